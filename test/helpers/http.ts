/** Plain HTTP for tests that talk to a real rerunHttp process and to the emulator. */

type Json = Record<string, any>;

/** POSTs a JSON event; answers the status and the parsed body ({} when empty). */
export async function postJson(url: string, body: unknown): Promise<{ status: number; body: Json }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Json) : {} };
}

/** Lists all of a queue's tasks in the FULL view from the emulator at `emulatorUrl`, page after page. */
export async function listTasksFull(emulatorUrl: string, queue: string): Promise<Json[]> {
  const tasks: Json[] = [];
  let pageToken = '';
  do {
    const url = `${emulatorUrl}/v2/${queue}/tasks?responseView=FULL&pageToken=${encodeURIComponent(pageToken)}`;
    const answer = (await (await fetch(url)).json()) as Json;
    tasks.push(...((answer.tasks as Json[] | undefined) ?? []));
    pageToken = (answer.nextPageToken as string | undefined) ?? '';
  } while (pageToken !== '');
  return tasks;
}
