#!/usr/bin/env node
// Pushes jobs to a Faktory Gateway from Node.js with @grpc/grpc-js.
//
// The contract is loaded at run time from the repository's .proto with @grpc/proto-loader, so no
// generated code is needed. Sends `Push` calls of up to --batch jobs, up to --parallel at once,
// and checks the one result per job each call returns. Jobs are `add` jobs (args
// [{"a": i, "b": i + 1}], as the Rust example worker expects); the
// gateway generates the jids, which go to --jids-out. Exits 1 if any job was not accepted.
//
//   node producer.js --gateway http://127.0.0.1:7421 --count 1000

'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');
const PROTO_FILE = 'faktory_gateway/v1/gateway.proto';
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

function options() {
  const { values } = parseArgs({
    options: {
      gateway: { type: 'string', default: process.env.GATEWAY_URL || 'http://127.0.0.1:7421' },
      token: { type: 'string', default: process.env.GATEWAY_PRODUCER_TOKEN || '' },
      count: { type: 'string', default: '1000' },
      batch: { type: 'string', default: '500' },
      parallel: { type: 'string', default: '4' },
      queue: { type: 'string', default: 'default' },
      jobtype: { type: 'string', default: 'add' },
      'jids-out': { type: 'string' },
      timeout: { type: 'string', default: '30' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log('usage: node producer.js [--gateway URL] [--token T] [--count N] [--batch N] ' +
      '[--parallel N] [--queue Q] [--jobtype T] [--jids-out FILE] [--timeout SECONDS]');
    process.exit(0);
  }
  const number = (name) => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number`);
    return n;
  };
  return { ...values, count: number('count'), batch: Math.max(1, number('batch')),
    parallel: Math.max(1, number('parallel')), timeout: number('timeout') };
}

// http://host:port -> plaintext, https://host:port -> TLS; a bare host:port means plaintext.
function client(url) {
  const parsed = new URL(url.includes('://') ? url : `http://${url}`);
  const target = `${parsed.hostname}:${parsed.port || 7421}`;
  let credentials;
  if (parsed.protocol === 'https:') credentials = grpc.credentials.createSsl();
  else if (parsed.protocol === 'http:') credentials = grpc.credentials.createInsecure();
  else throw new Error(`gateway URL ${url}: scheme must be http or https`);

  const definition = protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [PROTO_ROOT],
    keepCase: true, // field names exactly as in the .proto
    longs: String,
    enums: String, // PushStatus as its name, e.g. "PUSH_STATUS_ACCEPTED"
    defaults: true,
    oneofs: true,
  });
  const { Gateway } = grpc.loadPackageDefinition(definition).faktory_gateway.v1;
  return new Gateway(target, credentials, {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
}

function push(gateway, metadata, jobs, timeoutSeconds) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + timeoutSeconds * 1000);
    gateway.Push({ jobs }, metadata, { deadline }, (error, response) => {
      if (error) reject(error);
      else if (response.results.length !== jobs.length) {
        reject(new Error(`${jobs.length} jobs sent, ${response.results.length} results`));
      } else resolve(response.results);
    });
  });
}

function makeJob(opts, i) {
  return {
    jobtype: opts.jobtype,
    queue: opts.queue,
    // JSON travels as UTF-8 text in bytes fields, exactly as Faktory stores it.
    args: Buffer.from(JSON.stringify([{ a: i, b: i + 1 }])),
    custom: Buffer.from(JSON.stringify({ source: 'node-producer' })),
  };
}

async function main() {
  const opts = options();
  const gateway = client(opts.gateway);
  const metadata = new grpc.Metadata();
  if (opts.token) metadata.set('authorization', `Bearer ${opts.token}`);

  const starts = [];
  for (let start = 0; start < opts.count; start += opts.batch) starts.push(start);
  const accepted = [];
  const notAccepted = {};
  const started = process.hrtime.bigint();

  // A fixed number of loops share the list of batches, so at most --parallel calls are in flight.
  let next = 0;
  async function loop() {
    while (next < starts.length) {
      const start = starts[next++];
      const jobs = [];
      for (let i = start; i < Math.min(start + opts.batch, opts.count); i++) jobs.push(makeJob(opts, i));
      for (const result of await push(gateway, metadata, jobs, opts.timeout)) {
        if (result.status === 'PUSH_STATUS_ACCEPTED') {
          accepted.push(result.jid);
        } else {
          notAccepted[result.status] = (notAccepted[result.status] || 0) + 1;
          console.error(`job ${result.jid || '?'}: ${result.status} ${result.field} ${result.reason}`);
        }
      }
    }
  }
  await Promise.all(Array.from({ length: opts.parallel }, loop));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  gateway.close();

  if (opts['jids-out']) fs.writeFileSync(opts['jids-out'], accepted.map((jid) => `${jid}\n`).join(''));
  console.log(JSON.stringify({
    pushed: opts.count, accepted: accepted.length, not_accepted: notAccepted,
    seconds: Number(seconds.toFixed(3)), jobs_per_second: Math.round(opts.count / Math.max(seconds, 1e-9)),
  }));
  return accepted.length === opts.count ? 0 : 1;
}

main().then((code) => { process.exitCode = code; }, (error) => {
  console.error(`producer failed: ${error.message}`);
  process.exitCode = 2;
});
