// Baseline for the `hook_chain` bench: the spec's in-process, unsandboxed hook dispatcher (the
// TypeScript design this host replaces, `ws7-completion-plan.md` section 2.1), written as the
// JavaScript its TypeScript compiles to, so Node runs it without a build step.
//
// It registers one handler on each of the nine events, with the same small mutations as the
// chain test plugin (`tests/plugins/chain`), and times whole chains: nine dispatches, each
// with the design's per-handler timeout (a timer raced against the handler), the chain budget,
// the fail policy, the patch filtered to the event's mutable fields and merged on top of the
// data, and one receipt object per handler (id, plugin, hook, status, duration). The design
// writes its receipts to the database after each dispatch, fire-and-forget; this baseline builds
// them and does not write them, so it is the dispatcher's cost alone.
//
// `node hook_chain_js.mjs [iterations] [warmup]` prints one JSON line: median and p90 per chain
// in nanoseconds, and the final data of one chain so a caller can check it made the same
// changes as the native and sandboxed chains. The `hook_chain` bench runs it as
// `node hook_chain_js.mjs --serve [warmup]`, so it can alternate blocks of JavaScript chains with
// blocks of sandboxed ones in the same window: after `ready`, each line `N` on stdin times N
// chains and is answered by one JSON line (`samples_ns`, `final`); a line `N P` pauses P ms
// (untimed) before each chain, as a real run waits on its model between hook events.

import { randomUUID } from 'node:crypto'

const HOOK_TIMEOUT_MS = 1500
const CHAIN_BUDGET_MS = 8000

/** The fields each hook may change (spec section 12.3); others in a patch are ignored. */
const MUTABLE = {
  'work_item.pre_create': ['title', 'payload', 'sessionKey'],
  'work_item.post_create': [],
  'run.pre_prompt': ['systemPrompt', 'userMessage'],
  'model.pre_call': ['model', 'temperature', 'maxTokens'],
  'model.post_call': [],
  'tool.pre_exec': ['toolInput'],
  'tool.post_exec': ['output'],
  'response.pre_deliver': ['content'],
  'response.post_deliver': [],
}

class HookRegistry {
  constructor() {
    this.byHook = new Map()
    this.seq = 0
  }

  register(reg) {
    const list = this.byHook.get(reg.hookName) ?? []
    list.push({ ...reg, seq: this.seq++ })
    // Priority high to low, then plugin id, then registration order.
    list.sort(
      (a, b) =>
        b.priority - a.priority ||
        (a.pluginId < b.pluginId ? -1 : a.pluginId > b.pluginId ? 1 : 0) ||
        a.seq - b.seq,
    )
    this.byHook.set(reg.hookName, list)
  }

  unregister(pluginId) {
    for (const [hook, list] of this.byHook) {
      this.byHook.set(
        hook,
        list.filter((r) => r.pluginId !== pluginId),
      )
    }
  }

  getHandlers(hookName) {
    return this.byHook.get(hookName) ?? []
  }
}

class TimeoutError extends Error {}

function withTimeout(promise, ms) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`timed out after ${ms}ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

class HookDispatcher {
  constructor(registry, eventBudgetMs = CHAIN_BUDGET_MS) {
    this.registry = registry
    this.eventBudgetMs = eventBudgetMs
  }

  async dispatch(hookName, context, data) {
    const receipts = []
    const mutable = MUTABLE[hookName]
    let blocked = false
    const chainStart = performance.now()
    for (const reg of this.registry.getHandlers(hookName)) {
      const left = this.eventBudgetMs - (performance.now() - chainStart)
      if (left <= 0) {
        receipts.push(receipt(reg, hookName, context, 'timeout', 0, 'chain budget spent'))
        if (reg.failPolicy === 'fail_closed') {
          blocked = true
          break
        }
        continue
      }
      const start = performance.now()
      try {
        // The handler's context spelled out field by field: spreading `context` into it
        // (`{ ...context, hookName, ... }`) doubled the whole chain's time in Node 20.
        const ctx = {
          hookName,
          pluginId: reg.pluginId,
          workItemId: context.workItemId,
          jobId: context.jobId,
          agentId: context.agentId,
          data,
        }
        const result = await withTimeout(reg.handler(ctx), Math.min(reg.timeoutMs, left))
        const ms = performance.now() - start
        if (result?.data) {
          const patch = {}
          for (const key of mutable) {
            if (key in result.data) patch[key] = result.data[key]
          }
          data = { ...data, ...patch }
        }
        if (result?.action === 'block') {
          receipts.push(receipt(reg, hookName, context, 'blocked', ms))
          blocked = true
          break
        }
        receipts.push(receipt(reg, hookName, context, 'ok', ms))
      } catch (err) {
        const ms = performance.now() - start
        const status = err instanceof TimeoutError ? 'timeout' : 'error'
        receipts.push(receipt(reg, hookName, context, status, ms, String(err?.message ?? err)))
        if (reg.failPolicy === 'fail_closed') {
          blocked = true
          break
        }
      }
    }
    return { data, blocked, receipts }
  }
}

function receipt(reg, hookName, context, status, durationMs, error) {
  return {
    id: randomUUID(),
    pluginId: reg.pluginId,
    kind: 'hook',
    hookName,
    status,
    durationMs,
    workItemId: context.workItemId,
    jobId: context.jobId,
    detail: error === undefined ? null : { error },
    createdAt: Date.now(),
  }
}

// The chain test plugin's handlers (same mutations, same parsing).
const handlers = {
  'work_item.pre_create': async ({ data }) => ({
    action: 'continue',
    data: { title: `${data.title} +pre_create` },
  }),
  'work_item.post_create': async () => ({ action: 'continue' }),
  'run.pre_prompt': async ({ data }) => ({
    action: 'continue',
    data: { systemPrompt: `${data.systemPrompt}\n[pre_prompt]` },
  }),
  'model.pre_call': async ({ data }) => {
    const messages = JSON.parse(data.messages)
    JSON.stringify(messages[messages.length - 1])
    return { action: 'continue', data: { temperature: 0.5 } }
  },
  'model.post_call': async () => ({ action: 'continue' }),
  'tool.pre_exec': async ({ data }) => {
    const input = JSON.parse(data.toolInput)
    input.chain = (input.chain ?? 0) + 1
    return { action: 'continue', data: { toolInput: JSON.stringify(input) } }
  },
  'tool.post_exec': async ({ data }) => ({
    action: 'continue',
    data: { output: `${data.output} +post_exec` },
  }),
  'response.pre_deliver': async ({ data }) => ({
    action: 'continue',
    data: { content: `${data.content} +pre_deliver` },
  }),
  'response.post_deliver': async () => ({ action: 'continue' }),
}

const workItem = {
  id: 'wi-1',
  title: 'deploy status',
  text: 'is the deploy done?',
  sessionKey: 'chat:room-1',
  sourceRef: 'chat:m1',
  payload: '{"id":"m1","text":"is the deploy done?"}',
  status: 'running',
  createdAtMs: 1,
}

/** The nine events of one run, in order (the same data as the Rust bench's). */
function events() {
  const messages = JSON.stringify([
    { role: 'system', content: 'You are helpful.' },
    { role: 'user', content: 'is the deploy done?' },
  ])
  return [
    [
      'work_item.pre_create',
      {
        title: workItem.title,
        text: workItem.text,
        sessionKey: workItem.sessionKey,
        sourceRef: workItem.sourceRef,
        payload: workItem.payload,
        integrationType: 'chat',
        pluginInstanceId: 'inst-1',
      },
    ],
    ['work_item.post_create', { workItem, integrationType: 'chat', pluginInstanceId: 'inst-1' }],
    [
      'run.pre_prompt',
      {
        systemPrompt: 'You are helpful.',
        userMessage: workItem.text,
        agent: { id: 'agent-1', name: 'default', model: 'm' },
        workItem,
      },
    ],
    ['model.pre_call', { model: 'm', temperature: 0.2, maxTokens: 1024, messages, tools: '[]', turn: 1 }],
    [
      'model.post_call',
      {
        response: '{"choices":[{"message":{"content":"yes"}}]}',
        model: 'm',
        turn: 1,
        durationMs: 10,
        usage: { promptTokens: 10, completionTokens: 1, costUsd: null },
      },
    ],
    ['tool.pre_exec', { toolName: 'lookup', toolInput: '{"q":"deploy"}', toolCallId: 'call-1', turn: 1 }],
    [
      'tool.post_exec',
      {
        toolName: 'lookup',
        toolInput: '{"q":"deploy"}',
        toolCallId: 'call-1',
        output: 'deployed at 12:00',
        isError: false,
        durationMs: 1,
        turn: 1,
      },
    ],
    [
      'response.pre_deliver',
      {
        content: 'Yes, deployed at 12:00.',
        integrationType: 'chat',
        pluginInstanceId: 'inst-1',
        workItemId: 'wi-1',
        streaming: false,
        hitLimit: false,
      },
    ],
    [
      'response.post_deliver',
      {
        content: 'Yes, deployed at 12:00.',
        delivery: { delivered: true, externalId: 'x1', error: null },
        integrationType: 'chat',
        pluginInstanceId: 'inst-1',
        workItemId: 'wi-1',
      },
    ],
  ]
}

const registry = new HookRegistry()
for (const [hookName, handler] of Object.entries(handlers)) {
  registry.register({
    pluginId: 'nitejar.chain',
    hookName,
    handler,
    priority: 0,
    failPolicy: 'fail_open',
    timeoutMs: HOOK_TIMEOUT_MS,
  })
}
const dispatcher = new HookDispatcher(registry)
const context = { workItemId: 'wi-1', jobId: 'job-1', agentId: 'agent-1' }
const template = events()

/** One run: the nine events dispatched in order. Returns each event's final data. */
async function run() {
  const out = {}
  for (const [hookName, data] of template) {
    const result = await dispatcher.dispatch(hookName, context, data)
    if (result.blocked || result.receipts.some((r) => r.status !== 'ok')) {
      throw new Error(`${hookName}: ${JSON.stringify(result.receipts)}`)
    }
    out[hookName] = result.data
  }
  return out
}

/**
 * Times `n` chains, each after an untimed pause of `pauseMs` (none when 0): their durations in
 * nanoseconds, and the last chain's final data.
 */
async function timed(n, pauseMs = 0) {
  const samples = []
  let last
  for (let i = 0; i < n; i++) {
    if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs))
    const t = process.hrtime.bigint()
    last = await run()
    samples.push(Number(process.hrtime.bigint() - t))
  }
  return { samples, last }
}

/** The six values the chain plugin changes, from one chain's final data. */
function finalOf(last) {
  return {
    title: last['work_item.pre_create'].title,
    system_prompt: last['run.pre_prompt'].systemPrompt,
    temperature: last['model.pre_call'].temperature,
    tool_input: last['tool.pre_exec'].toolInput,
    output: last['tool.post_exec'].output,
    content: last['response.pre_deliver'].content,
  }
}

if (process.argv[2] === '--serve') {
  // Interleaved mode: warm up, say `ready`, then for each line `N` read from stdin time N
  // chains and answer one JSON line with their durations (ns) and the last final data.
  const warmup = Number(process.argv[3] ?? 200)
  for (let i = 0; i < warmup; i++) await run()
  process.stdout.write('ready\n')
  const { createInterface } = await import('node:readline')
  for await (const line of createInterface({ input: process.stdin })) {
    const [n, pauseMs] = line.trim().split(/\s+/).map(Number)
    if (!Number.isInteger(n) || n <= 0) break
    const { samples, last } = await timed(n, Number.isInteger(pauseMs) ? pauseMs : 0)
    process.stdout.write(JSON.stringify({ samples_ns: samples, final: finalOf(last) }) + '\n')
  }
} else {
  const iterations = Number(process.argv[2] ?? 2000)
  const warmup = Number(process.argv[3] ?? 200)
  for (let i = 0; i < warmup; i++) await run()
  const { samples, last } = await timed(iterations)
  samples.sort((a, b) => a - b)
  console.log(
    JSON.stringify({
      median_ns: samples[Math.floor(samples.length / 2)],
      p90_ns: samples[Math.floor((samples.length * 9) / 10)],
      final: finalOf(last),
    }),
  )
}
