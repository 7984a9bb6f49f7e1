#!/usr/bin/env node
// Waits until grpc.health.v1.Health/Check answers SERVING for SERVICE at HOST:PORT, polling every
// 20 ms (a fresh channel per attempt, so no reconnect backoff delays the first answer), for at
// most TIMEOUT_MS. Prints one line of JSON and exits 0 on SERVING, 1 on timeout, 2 on bad usage:
//   {"serving_at_ms":<epoch ms>,"attempts":N}          or, on timeout,  {"last":"<last error>"}
//
//   node grpc_health_wait.js HOST:PORT [SERVICE] [TIMEOUT_MS]
//
// Uses tests/reflection's @grpc/grpc-js ((cd tests/reflection && npm ci)); the two health messages
// are encoded by hand (one field each), so no .proto file is needed.
'use strict';

const path = require('path');
const grpc = require(path.join(__dirname, '..', 'reflection', 'node_modules', '@grpc', 'grpc-js'));

const SERVING = 1;

// HealthCheckRequest { string service = 1; }
function encodeRequest(service) {
  const bytes = Buffer.from(service, 'utf8');
  if (bytes.length > 127) throw new Error('service name too long');
  return bytes.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, bytes.length]), bytes]);
}

// HealthCheckResponse { ServingStatus status = 1; }: the status (0 when absent).
function decodeStatus(buf) {
  for (let i = 0; i + 1 < buf.length; i += 2) {
    if (buf[i] === 0x08) return buf[i + 1];
  }
  return 0;
}

const Health = grpc.makeGenericClientConstructor({
  Check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: (s) => encodeRequest(s),
    requestDeserialize: (b) => b,
    responseSerialize: (b) => b,
    responseDeserialize: (b) => decodeStatus(b),
  },
});

function checkOnce(address, service) {
  const client = new Health(address, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.Check(service, { deadline: new Date(Date.now() + 500) }, (err, status) => {
      client.close();
      resolve(err ? `${err.code} ${err.details}` : status);
    });
  });
}

async function main() {
  const [address, service = '', timeoutArg = '30000'] = process.argv.slice(2);
  const timeout = Number(timeoutArg);
  if (!address || !Number.isFinite(timeout) || timeout <= 0) {
    process.stderr.write('usage: node grpc_health_wait.js HOST:PORT [SERVICE] [TIMEOUT_MS]\n');
    process.exit(2);
  }
  const end = Date.now() + timeout;
  let attempts = 0;
  let last = 'no attempt';
  while (Date.now() < end) {
    attempts += 1;
    last = await checkOnce(address, service);
    if (last === SERVING) {
      console.log(JSON.stringify({ serving_at_ms: Date.now(), attempts }));
      return 0;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  console.log(JSON.stringify({ last: String(last), attempts }));
  return 1;
}

main().then((rc) => process.exit(rc));
