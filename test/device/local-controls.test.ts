/** Who is in charge of recording, as the long press decides it: a connected VAR coordinator, a MultiCam controller heard lately, or nobody. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTROLLER_RECENT_MS, inChargeReason, varLinkUp } from '../../src/device/local-marks.js';

test('a VAR link counts while its socket is open and the node pairs, authenticates or is ready', () => {
  for (const state of ['pairing', 'authenticating', 'ready']) assert.equal(varLinkUp({ connected: true }, { state }), `a VAR coordinator is connected (link ${state})`);
  for (const state of ['disconnected', 'connecting', 'needs_pairing']) assert.equal(varLinkUp({ connected: true }, { state }), null, state);
  assert.equal(varLinkUp({ connected: false }, { state: 'ready' }), null, 'a closed socket is no coordinator');
});

test('a controller is in charge for two minutes after its last command; a coordinator link for as long as it is up', () => {
  const nowMs = 1_700_000_000_000;
  assert.equal(CONTROLLER_RECENT_MS, 120_000);
  assert.equal(inChargeReason({ varLink: null, controllerLastMs: null, nowMs }), null, 'never heard from anyone: standalone');
  assert.match(inChargeReason({ varLink: null, controllerLastMs: nowMs - 5000, nowMs })!, /^a MultiCam controller sent a command 5 s ago \(within 2 min\); a local recording is for standalone use only/);
  assert.match(inChargeReason({ varLink: null, controllerLastMs: nowMs - CONTROLLER_RECENT_MS + 1, nowMs })!, /MultiCam controller/);
  assert.equal(inChargeReason({ varLink: null, controllerLastMs: nowMs - CONTROLLER_RECENT_MS, nowMs }), null, 'two minutes of silence hands the unit back');
  const link = 'a VAR coordinator is connected (link ready)';
  assert.match(inChargeReason({ varLink: link, controllerLastMs: null, nowMs })!, /^a VAR coordinator is connected \(link ready\); .*record from the coordinator$/);
  assert.match(inChargeReason({ varLink: link, controllerLastMs: nowMs - 10 * CONTROLLER_RECENT_MS, nowMs })!, /VAR coordinator/);
});
