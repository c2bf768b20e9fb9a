import fc from 'fast-check';
import type { JNode } from './json-doc.js';

/**
 * Structure-aware generators for the gateway fuzz suite: client frames of every type built valid
 * and then changed in exactly one place, wrong types and prototype keys in every field, frames
 * around the size limits, deep nesting, hostile unicode, invalid UTF-8, binary frames, sequences
 * of frames, WebSocket protocol abuse on a raw socket, HTTP requests and upgrade requests.
 * Every value is plain data (no functions), so a failing case prints as the input that failed.
 */

/**
 * The fuzz users: ordinary ids and ids that are also names on Object.prototype, so a per-user map
 * kept in a plain object would show. Every one is a valid userid for `POST /token`.
 */
export const FUZZ_USERS = [
  'fz-a',
  'fz-b',
  'fz-c',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'prototype',
  'then',
  'x@y.z:1-2_3',
  '0',
  'u'.repeat(128),
] as const;

/** Keys (and values) that mean something on every JS object. */
export const PROTO_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  'isPrototypeOf',
  'toJSON',
  'then',
  '__defineGetter__',
] as const;

const FIELDS = ['type', 'content', 'userid', 'id', 'conversation_id', 'stream', 'request_id'] as const;

// ---------------------------------------------------------------- strings

const HOSTILE_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\t\n\r ',
  '\u00a0\u2028\u2029\ufeff',
  '\u202eevil\u202c',
  '\u200f\u05e9\u05dc\u05d5\u05dd\u200e',
  'e\u0301\u0301\u0301\u0301\u0301\u0301\u0301',
  'Z\u0351\u0352\u0353\u0354\u0355\u0356\u0357\u0358',
  '\u{1F600}\u{1D54F}\u{10FFFF}',
  '\ud800',
  '\udfff',
  'a\udc00b\ud800',
  '\uffff\ufffe',
  '%00%ff',
  '../../etc/passwd',
  '<script>alert(1)</script>',
  '${7*7}{{7*7}}',
  'fz.sentinel.0',
  'message',
  'hello',
  'cancel',
  'Message',
  'message ',
  ' message',
  'message\u0000',
] as const;

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));

export const anyString: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom(...HOSTILE_STRINGS, ...PROTO_KEYS), weight: 4 },
  { arbitrary: fc.string({ maxLength: 40 }), weight: 3 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 3 },
  { arbitrary: fc.string({ unit: 'grapheme-composite', maxLength: 20 }), weight: 1 },
  {
    arbitrary: fc.string({
      unit: fc.oneof(fc.string({ unit: 'binary', maxLength: 1 }), loneSurrogate),
      maxLength: 20,
    }),
    weight: 2,
  },
  { arbitrary: fc.string({ minLength: 200, maxLength: 2000 }), weight: 1 },
);

/** Bodies of `"…"` that JSON.stringify never writes: bad escapes, raw control bytes, bare backslashes. */
const rawStringBody = fc.oneof(
  fc.constantFrom(
    '\\ud800',
    '\\udfff\\ud800',
    '\\ud83d\\ude00',
    '\\u0000',
    '\\x41',
    '\\u12',
    '\\uZZZZ',
    '\\',
    '\\\\\\',
    '\u0001\u001f',
    '\n',
    '\\/\\b\\f\\n\\r\\t',
    'a\\u0000b',
  ),
  fc
    .array(
      fc.oneof(
        fc.constantFrom('\\ud800', '\\udc00', '\\u0000', 'a', '\u{1F600}'),
        fc.string({ maxLength: 3 }),
      ),
      {
        maxLength: 8,
      },
    )
    .map((parts) => parts.join('').replaceAll('"', '')),
);

// ---------------------------------------------------------------- values

const numberText = fc.oneof(
  fc.constantFrom(
    '0',
    '-0',
    '1e400',
    '-1e400',
    '1e-400',
    '123456789012345678901234567890',
    '9007199254740993',
    '1.7976931348623157e308',
    '0.1',
    '1E2',
    '-1',
    '4294967296',
  ),
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
);

const str = (s: string): JNode => ({ t: 'str', s });

export const scalar: fc.Arbitrary<JNode> = fc.oneof(
  { arbitrary: anyString.map(str), weight: 4 },
  { arbitrary: rawStringBody.map((body): JNode => ({ t: 'rawstr', body })), weight: 1 },
  { arbitrary: numberText.map((text): JNode => ({ t: 'num', text })), weight: 2 },
  {
    arbitrary: fc.constantFrom('true', 'false', 'null').map((text): JNode => ({ t: 'lit', text })),
    weight: 2,
  },
);

const objectKey = fc.oneof(
  { arbitrary: fc.constantFrom(...PROTO_KEYS, ...FIELDS), weight: 3 },
  { arbitrary: anyString, weight: 1 },
);

export const anyValue: fc.Arbitrary<JNode> = fc.letrec<{ value: JNode }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { arbitrary: scalar, weight: 6 },
    {
      arbitrary: fc.array(tie('value'), { maxLength: 4 }).map((items): JNode => ({ t: 'arr', items })),
      weight: 1,
    },
    {
      arbitrary: fc
        .array(fc.tuple(objectKey, tie('value')), { maxLength: 4 })
        .map((entries): JNode => ({ t: 'obj', entries })),
      weight: 1,
    },
  ),
})).value;

/** Nesting from hundreds to tens of thousands of levels (the case is skipped past the size limit). */
export const deepValue: fc.Arbitrary<JNode> = fc
  .record({
    open: fc.constantFrom('array' as const, 'object' as const),
    key: fc.constantFrom('a', '__proto__', 'type', 'constructor', 'toString'),
    depth: fc.oneof(
      fc.integer({ min: 100, max: 1000 }),
      fc.integer({ min: 1000, max: 10_000 }),
      fc.integer({ min: 10_000, max: 40_000 }),
    ),
    inner: fc.oneof(
      scalar,
      fc.constant<JNode>({ t: 'obj', entries: [['toString', { t: 'num', text: '1' }]] }),
    ),
  })
  .map((d): JNode => ({ t: 'deep', ...d }));

/** A wrong value for a field: any JSON type, a prototype name, nesting, or a huge string. */
export const wrongValue: fc.Arbitrary<JNode> = fc.oneof(
  { arbitrary: anyValue, weight: 6 },
  { arbitrary: deepValue, weight: 1 },
  {
    arbitrary: fc
      .constantFrom(...PROTO_KEYS)
      .map((k): JNode => ({ t: 'obj', entries: [[k, { t: 'num', text: '1' }]] })),
    weight: 2,
  },
  {
    arbitrary: fc
      .record({
        delta: fc.integer({ min: -5, max: 5 }),
        unit: fc.constantFrom('a', ' ', '\u{1F600}', 'e\u0301'),
      })
      .map((s): JNode => ({ t: 'sized', ...s })),
    weight: 1,
  },
);

// ---------------------------------------------------------------- client frames

const idRef = (k: number): JNode => ({ t: 'ref', ref: 'id', k });
const validId = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 3 }).map(idRef), weight: 4 },
  { arbitrary: fc.stringMatching(/^[\w.:-]{1,64}$/).map(str), weight: 1 },
);

const validContent: fc.Arbitrary<JNode> = fc.oneof(
  { arbitrary: fc.constantFrom('Hello, how are you?', 'hi', '__proto__', 'toString').map(str), weight: 3 },
  {
    arbitrary: fc
      .string({ unit: 'grapheme', minLength: 1, maxLength: 60 })
      .filter((s) => s.trim() !== '')
      .map(str),
    weight: 2,
  },
  {
    arbitrary: fc
      .record({ delta: fc.integer({ min: -3, max: 0 }), unit: fc.constantFrom('a', 'ab ', '\u{1F600}') })
      .map((s): JNode => ({ t: 'sized', ...s })),
    weight: 1,
  },
  {
    arbitrary: fc.constantFrom('\ud800 lone', 'e\u0301', '\u202eRTL', 'nul\u0000inside').map(str),
    weight: 1,
  },
);

/** A frame as its fields: valid by construction, before a mutation. */
type Fields = Array<[string, JNode]>;

const messageFields: fc.Arbitrary<Fields> = fc
  .record(
    {
      content: validContent,
      userid: fc.constant<JNode>({ t: 'ref', ref: 'user', k: 0 }),
      id: validId,
      conversation_id: fc.oneof(fc.constantFrom('c1', 'c2', '__proto__').map(str), validId),
    },
    { requiredKeys: ['content'] },
  )
  .map((r) => {
    const fields: Fields = [
      ['type', str('message')],
      ['content', r.content],
    ];
    if (r.userid) fields.push(['userid', r.userid]);
    if (r.id) fields.push(['id', r.id]);
    if (r.conversation_id) fields.push(['conversation_id', r.conversation_id]);
    return fields;
  });

const helloFields: fc.Arbitrary<Fields> = fc.option(fc.boolean(), { nil: undefined }).map((stream) => {
  const fields: Fields = [['type', str('hello')]];
  if (stream !== undefined) fields.push(['stream', { t: 'lit', text: stream ? 'true' : 'false' }]);
  return fields;
});

const cancelFields: fc.Arbitrary<Fields> = validId.map((id): Fields => [
  ['type', str('cancel')],
  ['request_id', id],
]);

/** Exactly one change to a valid frame (or none). */
type Mutation =
  | { m: 'none' }
  | { m: 'set'; field: number; value: JNode }
  | { m: 'delete'; field: number }
  | { m: 'add'; key: string; value: JNode }
  | { m: 'duplicate'; field: number; value: JNode; before: boolean }
  | { m: 'retype'; type: JNode };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.constant<Mutation>({ m: 'none' }), weight: 3 },
  {
    arbitrary: fc.record({ m: fc.constant('set' as const), field: fc.nat(5), value: wrongValue }),
    weight: 6,
  },
  { arbitrary: fc.record({ m: fc.constant('delete' as const), field: fc.nat(5) }), weight: 1 },
  {
    arbitrary: fc.record({
      m: fc.constant('add' as const),
      key: fc.oneof(fc.constantFrom(...PROTO_KEYS, ...FIELDS), anyString),
      value: fc.oneof(anyValue, fc.constantFrom(...PROTO_KEYS).map(str)),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      m: fc.constant('duplicate' as const),
      field: fc.nat(5),
      value: fc.oneof(anyValue, validContent),
      before: fc.boolean(),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      m: fc.constant('retype' as const),
      type: fc.oneof(
        wrongValue,
        fc.constantFrom(...PROTO_KEYS, 'Message', 'HELLO', 'message ', 'ack', 'response').map(str),
      ),
    }),
    weight: 2,
  },
);

function mutate(fields: Fields, mut: Mutation): JNode {
  const entries = [...fields];
  const at = (i: number) => i % entries.length;
  switch (mut.m) {
    case 'set': {
      const i = at(mut.field);
      entries[i] = [entries[i]?.[0] ?? 'type', mut.value];
      break;
    }
    case 'delete':
      entries.splice(at(mut.field), 1);
      break;
    case 'add':
      entries.push([mut.key, mut.value]);
      break;
    case 'duplicate': {
      const key = entries[at(mut.field)]?.[0] ?? 'type';
      if (mut.before) entries.unshift([key, mut.value]);
      else entries.push([key, mut.value]);
      break;
    }
    case 'retype':
      entries[0] = ['type', mut.type];
      break;
    case 'none':
      break;
  }
  return { t: 'obj', entries };
}

/** A client frame of one of the three types, valid or with exactly one field changed. */
export const clientFrameDoc: fc.Arbitrary<JNode> = fc
  .tuple(fc.oneof({ arbitrary: messageFields, weight: 3 }, helloFields, cancelFields), mutation)
  .map(([fields, mut]) => mutate(fields, mut));

export const validMessageDoc: fc.Arbitrary<JNode> = messageFields.map((f) => mutate(f, { m: 'none' }));

/** Whole-frame oddities: not objects, empty, truncated, deep at the top. */
const oddDoc: fc.Arbitrary<JNode> = fc.oneof(
  anyValue,
  deepValue,
  fc.constantFrom<JNode>(
    { t: 'rawstr', body: '' },
    { t: 'num', text: '' },
    { t: 'num', text: '{' },
    { t: 'num', text: '{"type":' },
    { t: 'num', text: '{"type":"message","content":"hi"' },
    { t: 'num', text: '{"type":"message",}' },
    { t: 'num', text: "{'type':'message'}" },
    { t: 'num', text: '{"type":"message","content":"a"}{"type":"hello"}' },
    { t: 'num', text: '\ufeff{"type":"hello"}' },
    { t: 'num', text: 'null' },
    { t: 'num', text: '[]' },
    { t: 'num', text: '{}' },
    { t: 'num', text: '{"__proto__":{"type":"message"},"content":"x"}' },
    { t: 'num', text: '{"type":"message","content":"x","__proto__":{"userid":"someone-else"}}' },
    { t: 'num', text: '{"type":"hello","stream":true,"stream":"yes"}' },
    { t: 'num', text: '{"type":"cancel","request_id":"a","request_id":{"toString":1}}' },
  ),
  // `"type":` followed by a deep array: the 23-byte kind of frame that used to stop the process.
  deepValue.map((d): JNode => ({ t: 'obj', entries: [['type', d]] })),
);

export type BytesMutation =
  | { b: 'truncate'; at: number }
  | { b: 'insert'; at: number; bytes: number[] }
  | { b: 'overwrite'; at: number; bytes: number[] };

/** Byte sequences that are not UTF-8: surrogates (CESU), overlongs, stray continuation, 0xFF, cut sequences. */
export const INVALID_UTF8: number[][] = [
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xc0, 0x80],
  [0xe0, 0x80, 0xaf],
  [0x80],
  [0xbf],
  [0xff],
  [0xfe],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
];

const fraction = fc.double({ min: 0, max: 1, noNaN: true });

const bytesMutation: fc.Arbitrary<BytesMutation> = fc.oneof(
  fc.record({ b: fc.constant('truncate' as const), at: fraction }),
  fc.record({
    b: fc.constant('insert' as const),
    at: fraction,
    bytes: fc.oneof(
      fc.constantFrom(...INVALID_UTF8),
      fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 4 }),
    ),
  }),
  fc.record({ b: fc.constant('overwrite' as const), at: fraction, bytes: fc.constantFrom(...INVALID_UTF8) }),
);

/** One client data frame as sent: its body, how it is framed and how it travels over TCP. */
export interface DataFrame {
  opcode: 'text' | 'binary';
  body: { kind: 'doc'; doc: JNode } | { kind: 'bytes'; bytes: number[] };
  bytesMutation?: BytesMutation;
  /** Pad the payload to `MAX_PAYLOAD_BYTES + delta` bytes (where the body allows). */
  size?: { delta: number; how: 'trailing-space' | 'leading-space' | 'content' };
  /** Sent as this many WebSocket fragments (1 = a single frame). */
  fragments: number;
  /** Where the TCP writes are cut, as fractions of the frame's bytes. */
  tcpCuts: number[];
}

const sizeSpec = fc.record({
  delta: fc.oneof(
    fc.integer({ min: -2, max: 2 }),
    fc.integer({ min: -300, max: 300 }),
    fc.constantFrom(-1, 0, 1, 100_000, 3_000_000),
  ),
  how: fc.constantFrom('trailing-space' as const, 'leading-space' as const, 'content' as const),
});

export const dataFrame: fc.Arbitrary<DataFrame> = fc.oneof(
  // Client frames as a client would build them, mostly one change away from valid.
  {
    weight: 12,
    arbitrary: fc.record(
      {
        opcode: fc.constant('text' as const),
        body: clientFrameDoc.map((doc) => ({ kind: 'doc' as const, doc })),
        fragments: fc.oneof({ arbitrary: fc.constant(1), weight: 6 }, fc.integer({ min: 2, max: 5 })),
        tcpCuts: fc.oneof(
          { arbitrary: fc.constant<number[]>([]), weight: 6 },
          fc.array(fraction, { maxLength: 4 }),
        ),
      },
      { requiredKeys: ['opcode', 'body', 'fragments', 'tcpCuts'] },
    ),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      opcode: fc.constant('text' as const),
      body: oddDoc.map((doc) => ({ kind: 'doc' as const, doc })),
      fragments: fc.constant(1),
      tcpCuts: fc.constant<number[]>([]),
    }),
  },
  // Near and past the frame size limit.
  {
    weight: 2,
    arbitrary: fc.record({
      opcode: fc.constant('text' as const),
      body: fc.oneof(validMessageDoc, clientFrameDoc).map((doc) => ({ kind: 'doc' as const, doc })),
      size: sizeSpec,
      fragments: fc.oneof({ arbitrary: fc.constant(1), weight: 4 }, fc.integer({ min: 2, max: 4 })),
      tcpCuts: fc.constant<number[]>([]),
    }),
  },
  // Invalid UTF-8 (or cut JSON) in a text frame: the bytes a `ws` client can send with binary: false.
  {
    weight: 2,
    arbitrary: fc.record({
      opcode: fc.constant('text' as const),
      body: fc.oneof(validMessageDoc, clientFrameDoc).map((doc) => ({ kind: 'doc' as const, doc })),
      bytesMutation,
      fragments: fc.oneof({ arbitrary: fc.constant(1), weight: 3 }, fc.integer({ min: 2, max: 3 })),
      tcpCuts: fc.constant<number[]>([]),
    }),
  },
  // Random bytes, as text or binary; and JSON in a binary frame.
  {
    weight: 2,
    arbitrary: fc.record({
      opcode: fc.constantFrom('text' as const, 'binary' as const),
      body: fc
        .oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 500, maxLength: 3000 }))
        .map((b) => ({ kind: 'bytes' as const, bytes: [...b] })),
      fragments: fc.constant(1),
      tcpCuts: fc.constant<number[]>([]),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      opcode: fc.constant('binary' as const),
      body: fc.oneof(validMessageDoc, clientFrameDoc).map((doc) => ({ kind: 'doc' as const, doc })),
      fragments: fc.constant(1),
      tcpCuts: fc.constant<number[]>([]),
    }),
  },
);

const textDoc = (doc: JNode): DataFrame => ({
  opcode: 'text',
  body: { kind: 'doc', doc },
  fragments: 1,
  tcpCuts: [],
});

/** The brief's kind of sequence: hello, a bad message, a cancel of an unknown id, a valid message. */
const storySequence: fc.Arbitrary<DataFrame[]> = fc
  .tuple(helloFields, clientFrameDoc, fc.stringMatching(/^[\w.:-]{1,64}$/), validMessageDoc, fc.boolean())
  .map(([hello, bad, unknownId, valid, cancelValid]) => [
    textDoc(mutate(hello, { m: 'none' })),
    textDoc(bad),
    textDoc({
      t: 'obj',
      entries: [
        ['type', str('cancel')],
        ['request_id', str(unknownId)],
      ],
    }),
    textDoc(valid),
    ...(cancelValid
      ? [
          textDoc({
            t: 'obj',
            entries: [
              ['type', str('cancel')],
              ['request_id', idRef(0)],
            ],
          }),
        ]
      : []),
  ]);

export interface ConnectFlags {
  stream: boolean;
  ack: boolean;
}

const connectFlags: fc.Arbitrary<ConnectFlags> = fc.record({ stream: fc.boolean(), ack: fc.boolean() });

/** Frames on one WebSocket, one after another (`step`: each answered before the next) or in one go. */
export interface FramesCase {
  kind: 'frames';
  user: number;
  connect: ConnectFlags;
  mode: 'step' | 'burst';
  frames: DataFrame[];
}

export const framesCase: fc.Arbitrary<FramesCase> = fc.record({
  kind: fc.constant('frames' as const),
  user: fc.nat(FUZZ_USERS.length - 1),
  connect: connectFlags,
  mode: fc.constantFrom('step' as const, 'burst' as const),
  frames: fc.oneof(
    { arbitrary: fc.array(dataFrame, { minLength: 1, maxLength: 3 }), weight: 6 },
    { arbitrary: fc.array(dataFrame, { minLength: 4, maxLength: 8 }), weight: 1 },
    { arbitrary: storySequence, weight: 2 },
  ),
});

// ---------------------------------------------------------------- WebSocket protocol abuse

/** A frame at the WebSocket level, with every bit the protocol has. */
export interface RawFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  lengthForm: 'min' | '16' | '64';
  payload:
    | { p: 'doc'; doc: JNode }
    | { p: 'bytes'; bytes: number[] }
    | { p: 'close'; code: number | null; reason: number[] }
    | { p: 'fill'; size: number }
    /** Piece `index` of `of` of the document's bytes: one message sent as fragments. */
    | { p: 'piece'; doc: JNode; index: number; of: number };
  /** The length field says something else than the payload's length. */
  lie?: 'more' | 'less' | 'huge' | 'max64' | 'over-limit';
}

export interface ProtocolCase {
  kind: 'protocol';
  user: number;
  connect: ConnectFlags;
  frames: RawFrame[];
  tcp: 'whole' | 'bytewise' | { cuts: number[] };
}

const plain = (p: Partial<RawFrame> & Pick<RawFrame, 'opcode' | 'payload'>): RawFrame => ({
  fin: true,
  rsv: 0,
  masked: true,
  lengthForm: 'min',
  ...p,
});

const okText: fc.Arbitrary<RawFrame> = clientFrameDoc.map((doc) =>
  plain({ opcode: 1, payload: { p: 'doc', doc } }),
);
const smallBytes = fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 125 });
const utf8 = (s: string) => [...Buffer.from(s, 'utf8')];

const CLOSE_CODES = [
  1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999,
  // Not allowed on the wire (RFC 6455 §7.4): reserved, never sent, or out of range.
  0, 1, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
];

const rawFrame: fc.Arbitrary<RawFrame> = fc.oneof(
  // Reserved opcodes, reserved bits, unmasked frames.
  fc
    .tuple(fc.constantFrom(3, 4, 5, 6, 7, 11, 12, 13, 14, 15), smallBytes)
    .map(([opcode, bytes]) => plain({ opcode, payload: { p: 'bytes', bytes } })),
  fc.tuple(fc.integer({ min: 1, max: 7 }), okText).map(([rsv, f]) => ({ ...f, rsv })),
  okText.map((f) => ({ ...f, masked: false })),
  // Control frames: small pings (answered with a pong), pongs nobody asked for, oversized or fragmented ones.
  smallBytes.map((bytes) => plain({ opcode: 9, payload: { p: 'bytes', bytes } })),
  smallBytes.map((bytes) => plain({ opcode: 10, payload: { p: 'bytes', bytes } })),
  fc
    .tuple(fc.constantFrom(8, 9, 10), fc.integer({ min: 126, max: 70_000 }))
    .map(([opcode, size]) => plain({ opcode, payload: { p: 'fill', size } })),
  fc
    .constantFrom(9, 10)
    .map((opcode) => plain({ opcode, fin: false, payload: { p: 'bytes', bytes: utf8('x') } })),
  // Close frames with good and bad codes, no code, one byte, invalid UTF-8 or over-long reasons.
  fc
    .tuple(
      fc.constantFrom(...CLOSE_CODES),
      fc.oneof(
        fc.constant([] as number[]),
        fc.constant(utf8('bye')),
        fc.constantFrom(...INVALID_UTF8),
        fc.constant(utf8('r'.repeat(124))),
      ),
    )
    .map(([code, reason]) => plain({ opcode: 8, payload: { p: 'close', code, reason } })),
  fc.constant(plain({ opcode: 8, payload: { p: 'close', code: null, reason: [] } })),
  fc.constant(plain({ opcode: 8, payload: { p: 'bytes', bytes: [0x03] } })),
  // Fragments: first, continuation, continuation with nothing to continue.
  okText.map((f) => ({ ...f, fin: false })),
  fc
    .tuple(fc.boolean(), fc.string({ maxLength: 20 }))
    .map(([fin, s]) => plain({ opcode: 0, fin, payload: { p: 'bytes', bytes: utf8(s) } })),
  // Length fields: longer forms than needed, and lengths that lie.
  fc
    .tuple(fc.constantFrom('16' as const, '64' as const), okText)
    .map(([lengthForm, f]) => ({ ...f, lengthForm })),
  fc
    .tuple(
      fc.constantFrom(
        'more' as const,
        'less' as const,
        'huge' as const,
        'max64' as const,
        'over-limit' as const,
      ),
      okText,
    )
    .map(([lie, f]) => ({
      ...f,
      lie,
      lengthForm: lie === 'huge' || lie === 'max64' ? ('64' as const) : f.lengthForm,
    })),
  // Empty data frames; random bytes as a binary frame.
  fc.constantFrom(1, 2).map((opcode) => plain({ opcode, payload: { p: 'bytes', bytes: [] } })),
  okText,
);

/** Valid fragmentation: one message in pieces, possibly with a ping in between. */
const fragmentedMessage: fc.Arbitrary<RawFrame[]> = fc
  .tuple(clientFrameDoc, fc.integer({ min: 2, max: 6 }), fc.boolean())
  .map(([doc, pieces, ping]) => {
    const frames: RawFrame[] = [];
    for (let i = 0; i < pieces; i++) {
      frames.push(
        plain({
          opcode: i === 0 ? 1 : 0,
          fin: i === pieces - 1,
          // The doc is cut into pieces when the case runs (it knows the bytes then).
          payload: { p: 'piece', doc, index: i, of: pieces },
        }),
      );
      if (ping && i === 0) frames.push(plain({ opcode: 9, payload: { p: 'bytes', bytes: utf8('mid') } }));
    }
    return frames;
  });

export const protocolCase: fc.Arbitrary<ProtocolCase> = fc.record({
  kind: fc.constant('protocol' as const),
  user: fc.nat(FUZZ_USERS.length - 1),
  connect: connectFlags,
  frames: fc.oneof(
    { arbitrary: fc.array(rawFrame, { minLength: 1, maxLength: 4 }), weight: 4 },
    { arbitrary: fragmentedMessage, weight: 1 },
    {
      arbitrary: fc.tuple(fragmentedMessage, rawFrame).map(([a, b]) => [...a.slice(0, 1), b, ...a.slice(1)]),
      weight: 1,
    },
    {
      arbitrary: fc
        .uint8Array({ minLength: 1, maxLength: 200 })
        .map((b) => [plain({ opcode: -1, payload: { p: 'bytes', bytes: [...b] } })]),
      weight: 1,
    },
  ),
  tcp: fc.oneof(
    { arbitrary: fc.constant('whole' as const), weight: 4 },
    { arbitrary: fc.constant('bytewise' as const), weight: 1 },
    { arbitrary: fc.array(fraction, { minLength: 1, maxLength: 5 }).map((cuts) => ({ cuts })), weight: 2 },
  ),
});

// ---------------------------------------------------------------- HTTP

/** A query string as parts: generated garbage, kept apart from the `userid` the oracle reasons about. */
const useridValue = fc.oneof(
  fc.constantFrom(...FUZZ_USERS.slice(0, 4)),
  fc.constantFrom(
    '',
    ' ',
    '%',
    '%zz',
    '%ff%fe',
    '%00',
    '%2',
    '+',
    'a+b',
    'a%20b',
    '%E2%82',
    '%F0%9F%98%80',
    'a&b',
    'a=b',
    '#',
  ),
  fc.stringMatching(/^[\w.@:-]{1,128}$/),
  anyString.map((s) => encodeURIComponent(s.replaceAll(/[\ud800-\udfff]/g, '\ufffd'))),
  anyString,
  fc.string({ minLength: 129, maxLength: 5000 }),
  fc.constantFrom(...PROTO_KEYS),
);

export interface HttpCase {
  kind: 'http';
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'OPTIONS' | 'HEAD';
  path: string;
  query: string[];
  headers: Array<[string, string]>;
  body?: string;
  /** `Authorization: Bearer` with a real token of a fuzz user, or a broken one. */
  auth?: 'valid' | 'garbage' | 'empty';
}

const HTTP_PATHS = [
  '/token',
  '/health',
  '/ready',
  '/metrics',
  '/',
  '/index.html',
  '/ws',
  '/widget.js',
  '/token/',
  '//token',
  '/TOKEN',
  '/health/..',
  '/%2e%2e/%2e%2e/etc/passwd',
  '/favicon.ico',
  '/__proto__',
  '/constructor',
  '/a%00b',
  '/%ff',
  '/api/v1/conversations',
  '/api/v1/conversations/c1',
  '/api/v1/conversations/__proto__',
  '/api/v1/conversations/%00%ff',
  '/api/v1/conversations/a/b',
  '/api/v1/x',
  '/api/',
  '/api/v2/presence',
  '/api/v2/presence/batch',
  '/api/v2/presence/fz.sentinel.0',
  '/api/v2/presence/__proto__',
  '/api/v2/presence/%E0%A4%A',
  '/api/v2/presence/a/b',
];

/** Bodies for `POST /token` in site mode (docs/identity.md), right and wrong. */
const TOKEN_BODIES = [
  '{"site":"demo"}',
  '{"site":"demo","renew":"a.b.c"}',
  '{"site":"demo","identity":"a.b.c"}',
  '{"site":"demo","captcha":"x"}',
  '{"site":"dev"}',
  '{"site":"__proto__"}',
  '{"site":"constructor"}',
  '{"site":{"toString":1}}',
  '{"site":["demo"]}',
  '{"site":"demo","extra":1}',
  '{"site":"demo","site":"other"}',
  '{"__proto__":{"site":"demo"}}',
  '[]',
  'null',
  '{',
];

const headerName = fc.constantFrom(
  'origin',
  'x-real-ip',
  'x-forwarded-for',
  'content-type',
  'accept',
  'cookie',
  'authorization',
  'x-fuzz',
  '__proto__',
  'constructor',
);
const headerValue = fc.oneof(
  fc.constantFrom(
    '',
    'null',
    'http://evil.example',
    '127.0.0.1',
    '::1',
    '1.2.3.4, 5.6.7.8',
    'application/json',
    'text/plain; charset=utf-7',
  ),
  // Printable: fetch refuses control characters in header values before anything is sent.
  fc.string({ unit: 'binary-ascii', maxLength: 60 }).map((s) => s.replaceAll(/[^\x20-\x7e]/g, '')),
  fc.string({ minLength: 1000, maxLength: 9000 }).map((s) => s.replaceAll(/[^\x20-\x7e]/g, 'a')),
);

const queryPart = fc.oneof(
  { arbitrary: useridValue.map((v) => `userid=${v}`), weight: 6 },
  {
    arbitrary: fc.constantFrom(
      'userid',
      'userid=',
      '=',
      '&',
      '&&',
      '?',
      'stream=1',
      'token=x',
      '__proto__=1',
      'constructor=x',
    ),
    weight: 2,
  },
  { arbitrary: fc.string({ maxLength: 30 }).map((s) => s.replaceAll('#', '')), weight: 1 },
);

export const httpCase: fc.Arbitrary<HttpCase> = fc.record(
  {
    kind: fc.constant('http' as const),
    method: fc.oneof(
      { arbitrary: fc.constant('POST' as const), weight: 4 },
      { arbitrary: fc.constant('GET' as const), weight: 4 },
      fc.constantFrom(
        'PUT' as const,
        'DELETE' as const,
        'PATCH' as const,
        'OPTIONS' as const,
        'HEAD' as const,
      ),
    ),
    path: fc.oneof(
      { arbitrary: fc.constantFrom(...HTTP_PATHS), weight: 6 },
      { arbitrary: fc.webPath(), weight: 1 },
      {
        arbitrary: fc
          .string({ minLength: 1, maxLength: 3000 })
          .map((s) => `/${encodeURIComponent(s.replaceAll(/[\ud800-\udfff]/g, ''))}`),
        weight: 1,
      },
    ),
    query: fc.array(queryPart, { maxLength: 4 }),
    headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 3 }),
    auth: fc.constantFrom('valid' as const, 'garbage' as const, 'empty' as const),
    body: fc.oneof(
      { arbitrary: fc.constantFrom(...TOKEN_BODIES), weight: 3 },
      anyString,
      fc.constantFrom('{"userid":"fz-a"}', 'userid=fz-a', '\u0000\u0000'),
      fc.string({ minLength: 10_000, maxLength: 100_000 }),
    ),
  },
  { requiredKeys: ['kind', 'method', 'path', 'query', 'headers'] },
);

/** Bytes on a raw TCP connection that only look like HTTP, or not at all. */
export interface RawHttpCase {
  kind: 'raw-http';
  request: { r: 'template'; template: number; fill: string } | { r: 'bytes'; bytes: number[] };
  /** Close the write side right after sending (a client that hangs up mid-request). */
  halfClose: boolean;
}

export const RAW_HTTP_TEMPLATES = [
  'GET /health HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /health HTTP/1.0\r\n\r\n',
  'POST /token?userid={fill} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
  'POST /token?userid=fz-a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{fill}',
  'POST /token?userid=fz-a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
  'POST /token?userid=fz-a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n',
  'POST /token?userid=fz-a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{fill}\r\n',
  'POST /token?userid=fz-a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz\r\n',
  'GET /{fill} HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /health?{fill} HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /health HTTP/1.1\r\nHost: x\r\n{fill}: y\r\n\r\n',
  'GET /health HTTP/1.1\r\nHost: x\r\nX: {fill}\r\n\r\n',
  'GET /health HTTP/1.1\r\nHost: x\r\n{fill}\r\n\r\n',
  '{fill} /health HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /health HTTP/{fill}\r\n\r\n',
  'GET /health HTTP/1.1\nHost: x\n\n',
  'GET /health HTTP/1.1\r\nHost: x\r\n',
  'GET  /health  HTTP/1.1\r\n\r\n',
  'GET http://127.0.0.1/health HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET * HTTP/1.1\r\nHost: x\r\n\r\n',
  'CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n',
  'TRACE / HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /ready HTTP/1.1\r\nHost: x\r\n\r\nGET /{fill} HTTP/1.1\r\n\r\n',
  'GET /ws?token={fill} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: {fill}\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  'GET /health HTTP/1.1\r\nHost: x\r\n' + 'X-Many: 1\r\n'.repeat(200) + '\r\n',
];

export const rawHttpCase: fc.Arbitrary<RawHttpCase> = fc.record({
  kind: fc.constant('raw-http' as const),
  request: fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        r: fc.constant('template' as const),
        template: fc.nat(RAW_HTTP_TEMPLATES.length - 1),
        fill: fc.oneof(
          fc.string({ unit: 'binary-ascii', maxLength: 40 }),
          fc.string({ unit: 'binary', maxLength: 40 }),
          fc.string({ minLength: 5000, maxLength: 70_000 }).map((s) => s.replaceAll(/[^\x21-\x7e]/g, 'a')),
          fc.constantFrom(
            '',
            '\r\n',
            '\0',
            '%',
            '%00',
            ' ',
            'GET',
            '1.1',
            '2.0',
            '0',
            'websocket',
            'a\r\nInjected: 1',
          ),
        ),
      }),
    },
    {
      weight: 1,
      arbitrary: fc
        .uint8Array({ minLength: 1, maxLength: 300 })
        .map((b) => ({ r: 'bytes' as const, bytes: [...b] })),
    },
  ),
  halfClose: fc.boolean(),
});

// ---------------------------------------------------------------- upgrade requests

export type TokenKind =
  | { k: 'valid' }
  | { k: 'other-user' }
  | { k: 'missing' }
  | { k: 'empty' }
  | { k: 'garbage'; text: string }
  | { k: 'tampered' }
  | {
      k: 'signed';
      sub: JNode | null;
      iss: 'ok' | 'bad';
      aud: 'ok' | 'bad';
      exp: 'future' | 'past' | 'none';
      alg: 'HS256' | 'none' | 'HS512';
      /** The session token's `site` and `mode` claims (docs/identity.md). */
      site: 'dev' | 'demo' | 'nope' | 'missing';
      mode: 'dev' | 'anonymous' | 'signed' | 'bogus' | 'missing';
    };

export interface UpgradeCase {
  kind: 'upgrade';
  user: number;
  token: TokenKind;
  userid:
    | { u: 'same' | 'other' | 'missing' | 'empty' | 'dup-same-first' | 'dup-other-first' }
    | { u: 'raw'; value: string };
  lastEventId: string | null;
  flags: string[];
  extra: string[];
  headers: Array<[string, string]>;
  omit: string[];
  /** After a 101: also send a valid message and expect its answer (when nothing makes it unanswerable). */
  message: boolean;
}

const lastEventIdValue = fc.oneof(
  fc.constantFrom(
    '',
    '0-0',
    '1-0',
    '0-1',
    '-1-0',
    '1--1',
    '1-',
    '-0',
    'abc',
    '1-0-0',
    ' 1-0',
    '1-0 ',
    '0x1-0',
    '1e3-0',
    '١-٠',
  ),
  fc.constantFrom(
    '99999999999999999999999999-0',
    '9007199254740993-9007199254740993',
    `${'9'.repeat(2000)}-0`,
    `0-${'9'.repeat(300)}`,
  ),
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => `${a}-${b}`),
  fc.bigInt({ min: 0n, max: 2n ** 70n }).map((n) => `${n}-0`),
  fc.constant('future'),
  anyString,
);

export const upgradeCase: fc.Arbitrary<UpgradeCase> = fc.record({
  kind: fc.constant('upgrade' as const),
  user: fc.nat(FUZZ_USERS.length - 1),
  token: fc.oneof(
    { arbitrary: fc.constant<TokenKind>({ k: 'valid' }), weight: 6 },
    fc.constantFrom<TokenKind>({ k: 'other-user' }, { k: 'missing' }, { k: 'empty' }, { k: 'tampered' }),
    fc
      .oneof(anyString, fc.constantFrom('a.b.c', 'eyJhbGciOiJub25lIn0.e30.', '....', 'Bearer x', '%', '%00'))
      .map((text): TokenKind => ({ k: 'garbage', text })),
    {
      weight: 3,
      arbitrary: fc.record({
        k: fc.constant('signed' as const),
        site: fc.constantFrom(
          'dev' as const,
          'dev' as const,
          'demo' as const,
          'nope' as const,
          'missing' as const,
        ),
        mode: fc.constantFrom(
          'dev' as const,
          'dev' as const,
          'anonymous' as const,
          'signed' as const,
          'bogus' as const,
          'missing' as const,
        ),
        sub: fc.option(
          fc.oneof(
            { arbitrary: fc.constantFrom(...PROTO_KEYS).map(str), weight: 2 },
            scalar,
            anyValue,
            fc.constant(str('')),
          ),
          {
            nil: null,
          },
        ),
        iss: fc.constantFrom('ok' as const, 'ok' as const, 'bad' as const),
        aud: fc.constantFrom('ok' as const, 'ok' as const, 'bad' as const),
        exp: fc.constantFrom('future' as const, 'future' as const, 'past' as const, 'none' as const),
        alg: fc.constantFrom('HS256' as const, 'HS256' as const, 'none' as const, 'HS512' as const),
      }),
    },
  ),
  userid: fc.oneof(
    { arbitrary: fc.constant({ u: 'same' as const }), weight: 4 },
    fc.constantFrom(
      { u: 'other' as const },
      { u: 'missing' as const },
      { u: 'empty' as const },
      { u: 'dup-same-first' as const },
      { u: 'dup-other-first' as const },
    ),
    useridValue.map((value) => ({ u: 'raw' as const, value })),
  ),
  lastEventId: fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, lastEventIdValue),
  flags: fc.array(
    fc.oneof(
      fc.constantFrom(
        'stream=1',
        'stream=true',
        'stream=0',
        'stream=yes',
        'ack=1',
        'ack=true',
        'ack=',
        'stream',
        'stream=1&stream=0',
      ),
      fc.string({ maxLength: 10 }).map((s) => `stream=${encodeURIComponent(s)}`),
    ),
    { maxLength: 3 },
  ),
  extra: fc.array(
    fc.oneof(
      fc.constantFrom('&', '==', '%', '%zz', '__proto__=1', 'token', 'a=%00'),
      fc.string({ unit: 'binary-ascii', maxLength: 10 }),
    ),
    {
      maxLength: 2,
    },
  ),
  headers: fc.array(
    fc.oneof(
      fc.tuple(
        fc.constant('Origin'),
        fc.constantFrom('null', 'http://evil.example', '', 'file://', '\u00ff'),
      ),
      fc.tuple(
        fc.constant('Sec-WebSocket-Protocol'),
        fc.constantFrom('chat', 'a, b, c', '', ',,,', 'x'.repeat(3000)),
      ),
      fc.tuple(
        fc.constant('Sec-WebSocket-Extensions'),
        fc.constantFrom(
          'permessage-deflate',
          'permessage-deflate; client_max_window_bits',
          'x-unknown',
          ';;;',
        ),
      ),
      fc.tuple(fc.constant('Sec-WebSocket-Version'), fc.constantFrom('8', '12', '14', '', '13, 8', 'abc')),
      fc.tuple(
        fc.constant('Sec-WebSocket-Key'),
        fc.constantFrom('', 'short', '!!!!', 'x'.repeat(1000), 'dGhlIHNhbXBsZSBub25jZQ=='),
      ),
      fc.tuple(fc.constant('Upgrade'), fc.constantFrom('WebSocket', 'websocket, h2c', 'h2c', '')),
      fc.tuple(fc.constant('Connection'), fc.constantFrom('keep-alive, Upgrade', 'close', '')),
      fc.tuple(fc.constant('X-Forwarded-For'), fc.constantFrom('1.2.3.4', 'garbage', '')),
    ),
    { maxLength: 2 },
  ),
  omit: fc.oneof(
    { arbitrary: fc.constant([] as string[]), weight: 8 },
    fc.subarray(['Sec-WebSocket-Key', 'Sec-WebSocket-Version', 'Upgrade', 'Connection', 'Host'], {
      minLength: 1,
    }),
  ),
  message: fc.boolean(),
});

// ---------------------------------------------------------------- all of it

export type FuzzCase = FramesCase | ProtocolCase | HttpCase | RawHttpCase | UpgradeCase;

export const fuzzCase: fc.Arbitrary<FuzzCase> = fc.oneof(
  { arbitrary: framesCase, weight: 10 },
  { arbitrary: protocolCase, weight: 3 },
  { arbitrary: httpCase, weight: 2 },
  { arbitrary: rawHttpCase, weight: 1 },
  { arbitrary: upgradeCase, weight: 2 },
);
