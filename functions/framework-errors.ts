/**
 * Answers errors raised inside the Functions Framework's own Express stack (malformed JSON, bodies too
 * large) in Google's error shape instead of Express's HTML page, which also echoes the request body.
 * The framework offers no hook for this (functions-framework-nodejs issue #686), so the final handler
 * of every Express app created after this import is replaced. Imported for its effect by index.ts.
 */
import express from 'express';
import type { Request, Response } from '@google-cloud/functions-framework';
import { sendGoogleError } from './google-error.js';

type Handle = (req: Request, res: Response, callback?: (error?: unknown) => void) => void;

const application = express.application as unknown as { handle: Handle };
const frameworkHandle = application.handle;

application.handle = function handle(this: unknown, req, res, callback) {
  frameworkHandle.call(this, req, res, callback ?? ((error) => answerFrameworkError(res, error)));
};

function answerFrameworkError(res: Response, error: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const status = (error as { status?: unknown } | undefined)?.status;
  const type = (error as { type?: unknown } | undefined)?.type;
  if (error === undefined) sendGoogleError(res, 404, 'not found');
  else if (type === 'entity.parse.failed') sendGoogleError(res, 400, 'the body is not valid JSON');
  else if (status === 413) sendGoogleError(res, 413, 'the body is larger than 1 MiB');
  else if (status === 415) sendGoogleError(res, 415, 'unsupported body encoding');
  else if (typeof status === 'number' && status >= 400 && status < 500)
    sendGoogleError(res, 400, 'bad request');
  else sendGoogleError(res, 500, 'internal error');
}
