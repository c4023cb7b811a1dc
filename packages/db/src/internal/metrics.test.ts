import { CompiledQuery, Kysely, PostgresDialect, sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { operationOf } from './metrics.js';

// A Kysely that only compiles: no pool is ever asked for a connection.
const db = new Kysely<{ notes: { id: string; title: string } }>({
  dialect: new PostgresDialect({ pool: () => Promise.reject(new Error('not connected')) }),
});

describe('operationOf', () => {
  it('labels built queries by their kind, never by their text', () => {
    const of = (query: { compile(): CompiledQuery }): string => {
      const compiled = query.compile();
      return operationOf(compiled.query, compiled.sql);
    };
    expect(of(db.selectFrom('notes').selectAll())).toBe('select');
    expect(of(db.insertInto('notes').values({ id: 'x', title: 'y' }))).toBe('insert');
    expect(of(db.updateTable('notes').set({ title: 'z' }))).toBe('update');
    expect(of(db.deleteFrom('notes'))).toBe('delete');
    expect(of(db.schema.createTable('t').addColumn('id', 'uuid'))).toBe('ddl');
  });

  it('labels raw SQL by a known first keyword, anything else as other', () => {
    const raw = (text: string): string => operationOf(CompiledQuery.raw(text).query, text);
    expect(raw('  SELECT 1')).toBe('select');
    expect(raw('begin')).toBe('begin');
    expect(raw('commit')).toBe('commit');
    expect(raw('explain analyze select secret from users')).toBe('other');
    expect(raw("'); drop table x; --")).toBe('other');
    const compiled = sql`select ${1}`.compile(db);
    expect(operationOf(compiled.query, compiled.sql)).toBe('select');
  });
});
