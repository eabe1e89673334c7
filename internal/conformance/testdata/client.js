// node-postgres (pg) through mandate: the conformance scenario, printed as
// a normalized transcript. Connection settings come from PG* variables.
'use strict';
const { Client, types } = require('pg');

const RELATIONS = `SELECT n.nspname, c.relname, c.relkind
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
 ORDER BY 1, 2`;

function out(label, value) { console.log(`${label}: ${value}`); }
const rowsText = (rows) => rows.map((r) => Object.values(r).join(' ')).join(', ');

async function main() {
  const client = new Client();
  await client.connect();

  let r = await client.query('SELECT id, balance FROM accounts ORDER BY id');
  out('accounts', rowsText(r.rows));
  r = await client.query('SELECT count(*) FROM transactions WHERE amount > $1', [0]);
  out('params', r.rows[0].count);
  try {
    await client.query('SELECT * FROM pg_stats');
    out('refused', 'no error');
  } catch (e) {
    out('refused', e.code);
  }
  r = await client.query('SELECT count(*) FROM accounts');
  out('after refusal', r.rows[0].count);
  out('version', (await client.query('SELECT version()')).rows[0].version);
  out('search_path', (await client.query('SHOW search_path')).rows[0].search_path);
  r = await client.query("SELECT current_setting('server_version_num') AS v");
  out('server_version_num', r.rows[0].v);
  r = await client.query(RELATIONS);
  out('relations', r.rows.map((x) => `${x.nspname}.${x.relname} ${x.relkind}`).join(', '));

  // node-specific: a named (server-side prepared) statement, reused.
  for (const min of [0, -1000]) {
    r = await client.query({ name: 'big', text: 'SELECT count(*) FROM transactions WHERE amount > $1', values: [min] });
    out(`named statement (> ${min})`, r.rows[0].count);
  }
  // Type parsers work from the field OIDs mandate relays unchanged.
  r = await client.query('SELECT id, balance, opened_at FROM accounts ORDER BY id LIMIT 1');
  out('field types', r.fields.map((f) => `${f.name}:${f.dataTypeID}`).join(' '));
  const row = r.rows[0];
  out('default parsers', `${typeof row.id} ${typeof row.balance} ${row.opened_at instanceof Date ? 'Date' : typeof row.opened_at} ${row.opened_at.toISOString()}`);
  types.setTypeParser(types.builtins.NUMERIC, parseFloat);
  types.setTypeParser(types.builtins.INT8, (v) => parseInt(v, 10));
  r = await client.query('SELECT id, balance FROM accounts ORDER BY id');
  out('custom parsers', r.rows.map((x) => `${typeof x.id}:${x.id} ${typeof x.balance}:${x.balance}`).join(', '));
  r = await client.query({ text: 'SELECT id, balance FROM accounts ORDER BY id', rowMode: 'array' });
  out('row mode array', JSON.stringify(r.rows));
  // An error inside a transaction block aborts it, as PostgreSQL's would.
  await client.query('BEGIN');
  try { await client.query('SELECT * FROM pg_stats'); } catch (e) { out('refused in transaction', e.code); }
  try { await client.query('SELECT 1'); out('after refusal in transaction', 'ok'); } catch (e) { out('after refusal in transaction', e.code); }
  await client.query('ROLLBACK');
  out('after rollback', (await client.query('SELECT count(*) AS n FROM accounts')).rows[0].n);
  await client.end();
}

main().catch((e) => { console.error(e); process.exit(1); });
