/**
 * Pub/Sub topic names, `projects/P/topics/T`, by Pub/Sub's own rules: a topic ID is 3-255 characters,
 * starts with a letter and does not start with `goog`.
 * https://cloud.google.com/pubsub/docs/pubsub-basics#resource_names
 */
import { isProjectId } from '../cloud-tasks/names.js';

const TOPIC_ID = /^(?!goog)[A-Za-z][A-Za-z0-9._~+%-]{2,254}$/;

/** True when `name` is a full topic name whose project and topic IDs follow Pub/Sub's rules. */
export function isTopicName(name: string): boolean {
  const [projects, project, topics, topic, ...rest] = name.split('/');
  return (
    projects === 'projects' &&
    isProjectId(project ?? '') &&
    topics === 'topics' &&
    TOPIC_ID.test(topic ?? '') &&
    rest.length === 0
  );
}
