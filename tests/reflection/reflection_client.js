#!/usr/bin/env node
// A gRPC client that knows nothing about audiences-gateway but its address: like grpcurl, it
// learns the service from server reflection (grpc.reflection.v1alpha), with no .proto file, then
// lists the services, describes a message and the health service, and calls ListAudiences with
// the reflected types.
//
//   node reflection_client.js HOST:PORT SPACE_ID
//
// Prints what it found in grpcurl's style, then one last line of JSON for the test to check:
//   {"services":[...],"methods":[...],"message":{"name":...,"fields":[...]},
//    "list":{"audiences":[{"id","name"}],"total_entries":N,"request_id":"..."}}
// Exits 0 when every step worked, 1 (with the reason on stderr) otherwise, 2 on bad usage.
// Every reflection request and call has a 10 s deadline.
'use strict';

const grpc = require('@grpc/grpc-js');
const { GrpcReflection } = require('grpc-js-reflection-client');

const SERVICE = 'segment.audiences.v1.AudiencesService';
const MESSAGE = 'segment.audiences.v1.ListAudiencesRequest';
const REQUEST_ID = 'reflection-client-0001';
const HEALTH = 'grpc.health.v1.Health';

function callOptions() {
  return { deadline: new Date(Date.now() + 10000) };
}

// grpcurl-like text for one protobufjs field.
function describeField(field) {
  let label = '';
  if (field.repeated) label = 'repeated ';
  else if (field.options && field.options.proto3_optional) label = 'optional ';
  else if (field.partOf && field.partOf.name.startsWith('_')) label = 'optional ';
  let type = field.type;
  if (field.resolvedType) type = '.' + field.resolvedType.fullName.replace(/^\./, '');
  return `  ${label}${type} ${field.name} = ${field.id};`;
}

function listAudiences(Service, address, spaceId) {
  const client = new Service(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set('x-request-id', REQUEST_ID);
  return new Promise((resolve, reject) => {
    let requestId = null;
    const call = client.ListAudiences({ space_id: spaceId }, metadata, callOptions(),
      (err, response) => {
        client.close();
        if (err) reject(new Error(`ListAudiences: ${err.code} ${err.details}`));
        else resolve({ response, requestId });
      });
    call.on('metadata', (md) => {
      const values = md.get('x-request-id');
      if (values.length > 0) requestId = String(values[0]);
    });
  });
}

async function main() {
  const [address, spaceId] = process.argv.slice(2);
  if (!address || !spaceId) {
    process.stderr.write('usage: node reflection_client.js HOST:PORT SPACE_ID\n');
    process.exit(2);
  }
  const reflection = new GrpcReflection(address, grpc.credentials.createInsecure());
  const metadata = () => new grpc.Metadata();

  // grpcurl list
  const services = await reflection.listServices('*', metadata(), callOptions());
  console.log('$ grpcurl -plaintext ' + address + ' list');
  for (const s of services) console.log(s);
  if (!services.includes(SERVICE)) throw new Error(`reflection does not list ${SERVICE}`);

  // grpcurl list SERVICE
  const methods = (await reflection.listMethods(SERVICE, metadata(), callOptions()))
    .map((m) => m.name);
  console.log(`\n$ grpcurl -plaintext ${address} list ${SERVICE}`);
  for (const m of methods) console.log(`${SERVICE}.${m}`);

  // grpcurl describe MESSAGE
  const messageRoot = (await reflection.getDescriptorBySymbol(MESSAGE, metadata(), callOptions()))
    .getProtobufJsRoot();
  const type = messageRoot.lookupType(MESSAGE);
  type.resolveAll();
  console.log(`\n$ grpcurl -plaintext ${address} describe ${MESSAGE}`);
  console.log(`${MESSAGE} is a message:`);
  console.log(`message ${type.name} {`);
  for (const f of type.fieldsArray) console.log(describeField(f));
  console.log('}');
  const fields = type.fieldsArray.map((f) => ({
    name: f.name,
    number: f.id,
    type: f.resolvedType ? f.resolvedType.fullName.replace(/^\./, '') : f.type,
    repeated: Boolean(f.repeated),
  }));

  // grpcurl -d '{"space_id": ...}' ADDRESS SERVICE/ListAudiences, with the reflected service.
  const packageObject = (await reflection.getDescriptorBySymbol(SERVICE, metadata(),
    callOptions())).getPackageObject({ keepCase: true, longs: String, enums: String,
    defaults: false, oneofs: true });
  const Service = SERVICE.split('.').reduce((node, part) => node && node[part], packageObject);
  if (typeof Service !== 'function') throw new Error(`no client constructor for ${SERVICE}`);
  const { response, requestId } = await listAudiences(Service, address, spaceId);
  console.log(`\n$ grpcurl -plaintext -H 'x-request-id: ${REQUEST_ID}' -d '{"space_id":"${spaceId}"}'` +
    ` ${address} ${SERVICE}/ListAudiences`);
  // (Keys starting with "_" are protobufjs' synthetic oneofs of proto3 `optional` fields.)
  console.log(JSON.stringify(response, (k, v) => (k.startsWith('_') ? undefined : v), 2));

  // grpcurl describe grpc.health.v1.Health: the built-in health service is described too.
  const healthRoot = (await reflection.getDescriptorBySymbol(HEALTH, metadata(), callOptions()))
    .getProtobufJsRoot();
  const health = healthRoot.lookupService(HEALTH);
  console.log(`\n$ grpcurl -plaintext ${address} describe ${HEALTH}`);
  console.log(`${HEALTH} is a service:`);
  for (const m of health.methodsArray) {
    console.log(`  rpc ${m.name} ( .${m.resolvedRequestType ? m.resolvedRequestType.fullName
      .replace(/^\./, '') : m.requestType} ) returns ( ${m.responseStream ? 'stream ' : ''}` +
      `.${m.responseType} );`);
  }
  const healthMethods = health.methodsArray.map((m) => m.name);

  const audiences = (response.audiences || []).map((a) => ({ id: a.id, name: a.name }));
  const pagination = response.pagination || {};
  const summary = {
    services,
    methods,
    message: { name: type.fullName.replace(/^\./, ''), fields },
    health_methods: healthMethods,
    list: {
      audiences,
      total_entries: pagination.total_entries === undefined ? null
        : Number(pagination.total_entries),
      request_id: requestId,
    },
  };
  console.log(JSON.stringify(summary));
}

main().then(() => process.exit(0)).catch((err) => {
  process.stderr.write(`reflection_client: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
