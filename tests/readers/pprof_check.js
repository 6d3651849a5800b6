// Decode a pprof file with the npm pprof-format package (which does no
// validation) and check its references ourselves: string_table[0] is "",
// ids are non-zero, unique and resolvable, every sample has one value per
// sample type. Prints {samples, value0, types} as JSON.
//
//   node pprof_check.js FILE.pb.gz
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const { Profile } = require('pprof-format');

function fail(msg) { throw new Error(msg); }

const file = process.argv[2];
let buf = fs.readFileSync(file);
if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
const p = Profile.decode(buf);
const strings = p.stringTable.strings;
if (strings[0] !== '') fail('string_table[0] is not ""');
const str = (i) => { const n = Number(i); if (n < 0 || n >= strings.length) fail(`string ${n} out of range`); return strings[n]; };
const ids = (list, what) => {
  const m = new Map();
  for (const x of list) {
    const id = Number(x.id);
    if (!id || m.has(id)) fail(`${what} id ${id} is zero or duplicated`);
    m.set(id, x);
  }
  return m;
};
const mappings = ids(p.mapping, 'mapping');
const functions = ids(p.function, 'function');
const locations = ids(p.location, 'location');
for (const f of p.function) { str(f.name); str(f.systemName); str(f.filename); }
for (const m of p.mapping) str(m.filename);
for (const l of p.location) {
  if (Number(l.mappingId) && !mappings.has(Number(l.mappingId))) fail('unknown mapping');
  for (const line of l.line) if (!functions.has(Number(line.functionId))) fail('unknown function');
}
let value0 = 0;
for (const s of p.sample) {
  if (s.value.length !== p.sampleType.length) fail('a sample has the wrong number of values');
  for (const id of s.locationId) if (!locations.has(Number(id))) fail('unknown location');
  for (const l of s.label) { str(l.key); str(l.str); }
  value0 += Number(s.value[0]);
}
console.log(JSON.stringify({
  samples: p.sample.length, value0,
  types: p.sampleType.map((t) => `${str(t.type)}/${str(t.unit)}`),
  period: Number(p.period),
}));
