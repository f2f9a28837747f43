#!/usr/bin/env node
// Checks the project's Faktory test server with an independent client: npm `faktory-worker`.
//
// Against FAKTORY_URL (default tcp://127.0.0.1:7419): PUSH and PUSHB through the client, a raw
// FETCH + ACK round trip, a FAIL of an unknown jid (real Faktory answers "Job not found"), then
// the library's Worker processes pushed jobs (one of which throws, so it is FAILed) and INFO
// must show them processed, the failure counted and the failed job in the retry set.
// Closing line: "third-party-node: N passed, N failed".

'use strict';

const { setTimeout: sleep } = require('node:timers/promises');
const faktory = require('faktory-worker');
const { Worker } = require('faktory-worker/lib/worker');

const url = process.env.FAKTORY_URL || 'tcp://127.0.0.1:7419';
let passed = 0;
let failed = 0;

function check(name, ok, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` (${detail})` : ''}`);
}

async function waitFor(predicate, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await predicate()) return true;
    await sleep(50);
  }
  return false;
}

async function main() {
  const client = await faktory.connect({ url });
  const before = (await client.info()).faktory;

  // PUSH, then a raw FETCH + ACK round trip on a queue of its own.
  const jid = await client.job('Echo', 'hello', 42).push();
  check('PUSH returns the jid', typeof jid === 'string' && jid.length > 0);
  const pushedOwnQueue = await client.push({ jobtype: 'Echo', args: ['raw'], queue: 'node-raw' });
  const fetched = await client.fetch('node-raw');
  check('FETCH returns the pushed job', fetched && fetched.jid === pushedOwnQueue &&
    fetched.jobtype === 'Echo' && JSON.stringify(fetched.args) === '["raw"]',
  JSON.stringify(fetched));
  check('ACK of the fetched job is OK', (await client.ack(fetched.jid)) === 'OK');

  let unknownFail;
  try {
    await client.fail('no-such-jid-node', new Error('x'));
    unknownFail = 'OK';
  } catch (e) {
    unknownFail = e.message;
  }
  check('FAIL of an unknown jid is an error', /not found/i.test(unknownFail), unknownFail);

  // PUSHB, then the library's Worker runs everything in `default`: 5 adds and one that throws.
  const jobs = [1, 2, 3, 4, 5].map((n) => client.job('Add', n, n));
  const rejected = await client.pushBulk(jobs);
  check('PUSHB accepts all jobs', Object.keys(rejected).length === 0, JSON.stringify(rejected));
  const boom = client.job('Boom');
  boom.retry = 3;
  const boomJid = await boom.push();

  const sums = [];
  const failures = [];
  const worker = new Worker({
    url,
    concurrency: 4,
    queues: ['default'],
    timeout: 5,
    registry: {
      Add: (a, b) => { sums.push(a + b); },
      Echo: () => {},
      Boom: () => { throw new Error('boom on purpose'); },
    },
  });
  worker.on('fail', ({ job }) => failures.push(job.jid));
  await worker.work();
  const done = await waitFor(() => sums.length === 5 && failures.length === 1, 20000);
  await worker.stop();
  check('Worker ran the 5 pushed Add jobs', done && sums.slice().sort((x, y) => x - y).join() === '2,4,6,8,10',
    JSON.stringify(sums));
  check('Worker FAILed the throwing job', failures.length === 1 && failures[0] === boomJid);

  // ACKs: Echo, raw Echo, 5 Adds; FAIL: Boom. Real Faktory counts a FAIL as processed too.
  const settled = await waitFor(async () => {
    const info = (await client.info()).faktory;
    return info.total_processed - before.total_processed >= 8 && info.total_enqueued === 0;
  }, 10000);
  const after = (await client.info()).faktory;
  check('INFO counts every ACK and FAIL as processed, nothing is left queued',
    settled && after.total_processed - before.total_processed === 8,
    `processed +${after.total_processed - before.total_processed}, queued ${after.total_enqueued}`);
  check('INFO counts the failure', after.total_failures - before.total_failures === 1,
    `failures +${after.total_failures - before.total_failures}`);
  const retries = after.tasks && after.tasks.Retries ? after.tasks.Retries.size : undefined;
  check('the failed job waits in the retry set', retries >= 1, `Retries.size ${retries}`);

  await client.close();
}

main().then(() => {
  console.log(`third-party-node: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}, (error) => {
  console.error(`check aborted: ${error.stack || error}`);
  console.log(`third-party-node: ${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
