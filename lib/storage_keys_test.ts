import { equal } from "node:assert/strict";
import { toHex } from "./ids.ts";
import {
  archiveKey,
  lockKey,
  packKey,
  packKeyHex,
  parseArchiveKey,
  parseLockKey,
  parsePackKey,
} from "./storage_keys.ts";

const id = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
const hex = toHex(id);

Deno.test("pack keys are packs/<first two hex digits>/<hex id> and parse back", () => {
  equal(packKey(id), `packs/${hex.slice(0, 2)}/${hex}`);
  equal(packKeyHex(hex), packKey(id));
  equal(parsePackKey(packKey(id)), hex);
  equal(parsePackKey(`packs/ff/${hex}`), null, "the folder must be the id's first two digits");
  equal(parsePackKey(`packs/${hex}`), null);
  equal(parsePackKey(`packs/${hex.slice(0, 2)}/${hex.toUpperCase()}`), null);
  equal(parsePackKey(`packs/${hex.slice(0, 2)}/${hex}.tmp`), null);
});

Deno.test("archive keys are archives/<hex id> and parse back", () => {
  equal(archiveKey(id), `archives/${hex}`);
  equal(parseArchiveKey(archiveKey(id)), hex);
  equal(parseArchiveKey(`archives/${hex.slice(1)}`), null);
  equal(parseArchiveKey(`archives/x/${hex}`), null);
});

Deno.test("lock keys are locks/<hex id>; the commit lock is not one", () => {
  equal(lockKey(hex), `locks/${hex}`);
  equal(parseLockKey(lockKey(hex)), hex);
  equal(parseLockKey("locks/commit"), null);
  equal(parseLockKey(`archives/${hex}`), null);
});
