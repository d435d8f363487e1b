// Registers, publishes and reads through the TypeScript client against a real ferry-server
// (FERRY_SERVER_BIN, default: the workspace's debug build), as team:catalog and team:a.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";

import { Code, ConnectError } from "@connectrpc/connect";

import { type FerryClient, Role, createFerryClient, errorDetails } from "../src/index.js";

const repo = resolve(import.meta.dirname, "../../..");
const examples = join(repo, "examples/product_catalog");
const day2 = join(examples, "data/product_catalog_20210404.csv");
const binary =
  process.env.FERRY_SERVER_BIN ??
  join(process.env.CARGO_TARGET_DIR ?? join(repo, "target"), "debug/ferry-server");

let server: ChildProcess;
let dataDir: string;
let endpoint: string;
const tokens: Record<string, string> = {};

async function freePort(): Promise<number> {
  return new Promise((done) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => done(typeof address === "object" && address ? address.port : 0));
    });
  });
}

async function waitForPort(port: number): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const open = await new Promise<boolean>((done) => {
      const socket = createConnection(port, "127.0.0.1");
      socket.once("connect", () => (socket.destroy(), done(true)));
      socket.once("error", () => done(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`ferry-server did not listen on ${port}`);
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "ferry-ts-"));
  const port = await freePort();
  // The shipped policies plus one line binding every owner team to the shipped extracts.
  const sources = realpathSync(join(examples, "data"));
  const policyDir = join(dataDir, "policies");
  mkdirSync(policyDir);
  copyFileSync(join(repo, "policies/model.conf"), join(policyDir, "model.conf"));
  writeFileSync(
    join(policyDir, "policy.csv"),
    `${readFileSync(join(repo, "policies/policy.csv"), "utf8")}\np, owner, source:file://${sources}/*, read_source, never\n`,
  );
  // Only the server's own FERRY_* settings: it refuses unknown ones.
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith("FERRY_")),
  );
  Object.assign(env, {
    FERRY_LISTEN: `127.0.0.1:${port}`,
    FERRY_DATA_DIR: join(dataDir, "data"),
    FERRY_LOG_LEVEL: "warn",
    // The test reads the shipped extracts, and nothing else on this machine.
    FERRY_SOURCES__FILE_ROOTS: `["${sources}"]`,
    FERRY_POLICY_DIR: policyDir,
  });
  for (const principal of ["team:catalog", "team:a"]) {
    tokens[principal] = execFileSync(binary, ["token", "create", "--principal", principal], {
      env,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  }
  server = spawn(binary, ["serve"], { env, stdio: "ignore" });
  await waitForPort(port);
  endpoint = `http://127.0.0.1:${port}`;
});

after(() => {
  server?.kill();
  rmSync(dataDir, { recursive: true, force: true });
});

async function readAll(client: FerryClient, name: string): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  let columns: string[] = [];
  for await (const message of client.readRows({ name })) {
    if (message.schema.length > 0) columns = message.schema.map((c) => c.name);
    for (const row of message.rows) {
      rows.push(Object.fromEntries(row.values.map((v, i) => [columns[i], v.kind.value])));
    }
  }
  return rows;
}

test("register, publish and read through the generated client", async () => {
  const catalog = createFerryClient(endpoint, tokens["team:catalog"]);
  const registered = await catalog.registerDataset({
    contractSource: { case: "contractYaml", value: readFileSync(join(examples, "contract.yaml"), "utf8") },
  });
  assert.equal(registered.dataset?.contract?.name, "catalog.product_catalog");

  let result;
  for await (const event of catalog.publishPartition({
    dataset: "catalog.product_catalog",
    partitionDate: "2021-04-04",
    sourceUri: pathToFileURL(day2).href,
  })) {
    if (event.event.case === "result") result = event.event.value;
  }
  assert.equal(result?.publication?.rowsAccepted, 126n);

  const raw = await readAll(catalog, "catalog.product_catalog");
  assert.equal(raw.length, 126);
  const withImage = raw.filter((row) => typeof row.image === "string" && row.image !== "");

  await catalog.grantAccess({ target: "catalog.with_image", grantee: "team:a", role: Role.READER, purpose: "merchandising" });
  const teamA = createFerryClient(endpoint, tokens["team:a"]);
  const view = await readAll(teamA, "catalog.with_image");
  assert.equal(view.length, withImage.length);
  assert.ok(view.every((row) => typeof row.image === "string" && row.image !== ""));

  await assert.rejects(readAll(teamA, "catalog.product_catalog"), (error: unknown) => {
    assert.ok(error instanceof ConnectError);
    assert.equal(error.code, Code.PermissionDenied);
    assert.equal(errorDetails(error)?.reason, "POLICY_DENIED");
    return true;
  });
  const info = await teamA.getServerInfo({});
  assert.deepEqual(info.apiVersions, ["ferry.v1"]);
});

test("calls without a token are unauthenticated", async () => {
  const anonymous = createFerryClient(endpoint);
  await assert.rejects(anonymous.listDatasets({}), (error: unknown) => {
    assert.ok(error instanceof ConnectError);
    assert.equal(error.code, Code.Unauthenticated);
    assert.equal(errorDetails(error)?.reason, "UNAUTHENTICATED");
    return true;
  });
});

test("errors carry Ferry's reason, metadata and the wrong fields", async () => {
  const catalog = createFerryClient(endpoint, tokens["team:catalog"]);
  await assert.rejects(catalog.getDataset({ name: "catalog.nope" }), (error: unknown) => {
    assert.deepEqual(errorDetails(error), {
      reason: "DATASET_NOT_FOUND",
      metadata: { dataset: "catalog.nope" },
      fieldViolations: {},
    });
    return true;
  });
  await assert.rejects(catalog.getDataset({ name: "not a name" }), (error: unknown) => {
    const details = errorDetails(error);
    assert.equal(details?.reason, "INVALID_FIELD");
    assert.deepEqual(Object.keys(details?.fieldViolations ?? {}), ["name"]);
    return true;
  });
});
