import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Dedup, compareIds } from '../../build/dedup.js';

test('a repeated message ID is dropped', () => {
  const d = new Dedup(4);
  assert.equal(d.firstSeen('10'), true);
  assert.equal(d.firstSeen('11'), true);
  assert.equal(d.firstSeen('10'), false);
  assert.equal(d.firstSeen('11'), false);
});

test('memory is bounded: the window keeps `capacity` IDs however many pass', () => {
  const d = new Dedup(1024);
  for (let i = 1; i <= 10_000; i++) assert.equal(d.firstSeen(String(1_000_000 + i)), true);
  assert.equal(d.size, 1024);
  assert.equal(d.newest, '1010000');
});

test('IDs that left the window stay dropped through the watermark', () => {
  const d = new Dedup(2);
  d.firstSeen('100');
  d.firstSeen('101');
  d.firstSeen('102'); // 100 leaves the window: the watermark is 100
  assert.equal(d.firstSeen('100'), false, 'evicted, but at the watermark');
  assert.equal(d.firstSeen('99'), false, 'older than anything remembered');
  assert.equal(d.firstSeen('101'), false, 'still in the window');
  assert.equal(d.firstSeen('103'), true);
});

test('newest is the highest ID by value, not the last to arrive', () => {
  const d = new Dedup(8);
  d.firstSeen('386505424368566272');
  d.firstSeen('99'); // shorter, so smaller
  assert.equal(d.newest, '386505424368566272');
  d.firstSeen('386505424368566273');
  assert.equal(d.newest, '386505424368566273');
});

test('seed: the app already has everything up to an ID', () => {
  const d = new Dedup(8);
  d.seed('500');
  assert.equal(d.newest, '500');
  assert.equal(d.firstSeen('499'), false);
  assert.equal(d.firstSeen('500'), false);
  assert.equal(d.firstSeen('501'), true);
});

test('capacity 0 remembers nothing and drops nothing', () => {
  const d = new Dedup(0);
  assert.equal(d.firstSeen('1'), true);
  assert.equal(d.firstSeen('1'), true);
  assert.equal(d.size, 0);
});

test('compareIds orders 64-bit decimals without losing precision', () => {
  assert.equal(compareIds('18446744073709551615', '18446744073709551614'), 1);
  assert.equal(compareIds('9007199254740993', '9007199254740992'), 1, 'beyond Number precision');
  assert.equal(compareIds('007', '7'), 0);
  assert.equal(compareIds('10', '9'), 1);
  assert.equal(compareIds('abc', '1'), undefined);
});
