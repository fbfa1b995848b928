// The official OpenAI Node SDK against a running Jarvis Router: one JSON line per check on
// stdout, exit status 1 if any check failed (2 for bad usage). Run by the test suite later;
// by hand:
//   JARVIS_BASE_URL=http://127.0.0.1:8000/v1 JARVIS_API_KEY=sk-... \
//   JARVIS_MODEL=ollama/llama3 JARVIS_EMBED_MODEL=ollama/nomic-embed-text \
//   node tests/node/sdk_check.mjs [--only models,chat,chat_stream,tool_call,embeddings]
import OpenAI from "openai";

const CHECKS = ["models", "chat", "chat_stream", "tool_call", "embeddings"];
const USAGE = `usage: node sdk_check.mjs [--only ${CHECKS.join(",")}]

environment:
  JARVIS_BASE_URL     the router's base URL, with /v1 (required)
  JARVIS_API_KEY      a key the router accepts (required)
  JARVIS_MODEL        chat model id (default ollama/llama3)
  JARVIS_EMBED_MODEL  embedding model id (default ollama/nomic-embed-text)
  JARVIS_TIMEOUT_MS   per-request timeout (default 30000)

Prints one JSON object per check: {"check", "ok", ...facts} or {"check", "ok": false, "error"}.`;

const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Weather for a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
    },
  },
};

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

function parseArgs(argv) {
  if (argv.includes("--help") || argv.includes("-h")) return { help: true };
  const at = argv.indexOf("--only");
  const only = at >= 0 ? (argv[at + 1] ?? "").split(",").filter(Boolean) : CHECKS;
  const unknown = only.filter((name) => !CHECKS.includes(name));
  if (unknown.length) return { error: `unknown check(s): ${unknown.join(", ")}` };
  return { only };
}

const checks = {
  async models(client) {
    const page = await client.models.list();
    const ids = page.data.map((m) => m.id);
    assert(ids.length > 0, "no models listed");
    assert(page.data.every((m) => m.object === "model" && Number.isInteger(m.created)), "bad model object");
    return { count: ids.length, ids };
  },

  async chat(client, env) {
    const completion = await client.chat.completions.create({
      model: env.model,
      messages: [{ role: "user", content: "Say hello." }],
      max_tokens: 16,
    });
    const [choice] = completion.choices;
    assert(completion.object === "chat.completion", `object ${completion.object}`);
    assert(typeof choice.message.content === "string" && choice.message.content, "empty content");
    assert(completion.usage?.total_tokens > 0, "no usage");
    return { id: completion.id, content: choice.message.content, finish_reason: choice.finish_reason };
  },

  async chat_stream(client, env) {
    const stream = await client.chat.completions.create({
      model: env.model,
      messages: [{ role: "user", content: "Count to three." }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish = null;
    let usage = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      assert(chunk.object === "chat.completion.chunk", `object ${chunk.object}`);
      for (const choice of chunk.choices) {
        text += choice.delta?.content ?? "";
        finish = choice.finish_reason ?? finish;
      }
      usage = chunk.usage ?? usage;
    }
    assert(text, "no streamed text");
    assert(finish, "no finish_reason");
    assert(usage?.total_tokens > 0, "no usage chunk");
    return { chunks, content: text, finish_reason: finish, total_tokens: usage.total_tokens };
  },

  async tool_call(client, env) {
    const completion = await client.chat.completions.create({
      model: env.model,
      messages: [{ role: "user", content: "What is the weather in Tokyo? Use get_weather." }],
      tools: [WEATHER_TOOL],
    });
    const [choice] = completion.choices;
    const calls = choice.message.tool_calls ?? [];
    assert(calls.length > 0, "no tool call");
    assert(choice.finish_reason === "tool_calls", `finish_reason ${choice.finish_reason}`);
    const [call] = calls;
    assert(call.type === "function" && call.function.name === "get_weather", "wrong tool");
    const args = JSON.parse(call.function.arguments); // a JSON string, as the SDK expects
    return { id: call.id, name: call.function.name, arguments: args };
  },

  async embeddings(client, env) {
    const input = ["the sky is blue", "routers route"];
    // No encoding_format: the SDK asks for base64 and decodes it; then floats explicitly.
    const decoded = await client.embeddings.create({ model: env.embedModel, input });
    const floats = await client.embeddings.create({
      model: env.embedModel,
      input,
      encoding_format: "float",
    });
    assert(decoded.data.length === input.length, "wrong number of vectors");
    assert(decoded.data.every((d, i) => d.index === i), "indexes out of order");
    for (let i = 0; i < input.length; i += 1) {
      const a = Array.from(decoded.data[i].embedding);
      const b = floats.data[i].embedding.map((x) => Math.fround(x));
      assert(a.length === b.length && a.length > 0, `vector ${i} length`);
      assert(a.every((x, j) => x === b[j]), `vector ${i} differs between base64 and float`);
    }
    assert(decoded.usage.prompt_tokens > 0, "no usage");
    return { count: decoded.data.length, dimensions: decoded.data[0].embedding.length };
  },
};

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const baseURL = process.env.JARVIS_BASE_URL;
  const apiKey = process.env.JARVIS_API_KEY;
  if (args.error || !baseURL || !apiKey) {
    console.error(args.error ?? "JARVIS_BASE_URL and JARVIS_API_KEY are required");
    console.error(USAGE);
    return 2;
  }
  const env = {
    model: process.env.JARVIS_MODEL ?? "ollama/llama3",
    embedModel: process.env.JARVIS_EMBED_MODEL ?? "ollama/nomic-embed-text",
  };
  const timeout = Number(process.env.JARVIS_TIMEOUT_MS ?? 30000);
  const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout });
  let failed = 0;
  for (const name of args.only) {
    try {
      const facts = await checks[name](client, env);
      console.log(JSON.stringify({ check: name, ok: true, ...facts }));
    } catch (error) {
      failed += 1;
      const status = error?.status ?? null;
      console.log(JSON.stringify({ check: name, ok: false, status, error: String(error?.message ?? error) }));
    }
  }
  return failed ? 1 : 0;
}

process.exitCode = await main();
