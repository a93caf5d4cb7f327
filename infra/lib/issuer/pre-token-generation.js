'use strict';
// Cognito pre token generation trigger (event version V3_0): puts a cpis app client's claims
// (docs/claims.json) into its client-credentials access token. The claims are configured per
// client in SSM Parameter Store (CLAIMS_PARAMETER_PREFIX + client id), written by the stack.
// No child data passes through here, and nothing is logged. Any other trigger source, or a
// client without claims, is refused: Cognito then issues no token.
const CLAIMS = ['role', 'ods_code', 'rbac', 'org_name', 'setting', 'job_role', 'job_role_name'];
const CACHE_MS = 5 * 60 * 1000;
const cache = new Map();
let ssm;

async function lookup(clientId) {
  const hit = cache.get(clientId);
  if (hit && hit.until > Date.now()) return hit.claims;
  if (!ssm) {
    const { SSMClient } = require('@aws-sdk/client-ssm');
    ssm = new SSMClient({});
  }
  const { GetParameterCommand } = require('@aws-sdk/client-ssm');
  let claims = null;
  try {
    const out = await ssm.send(new GetParameterCommand({ Name: process.env.CLAIMS_PARAMETER_PREFIX + clientId }));
    claims = JSON.parse(out.Parameter.Value);
  } catch (e) {
    if (e.name !== 'ParameterNotFound') throw e;
  }
  cache.set(clientId, { claims, until: Date.now() + CACHE_MS });
  return claims;
}

async function claimsFor(event, find) {
  if (event.triggerSource !== 'TokenGeneration_ClientCredentials') {
    throw new Error('cpis issues client-credentials tokens only');
  }
  const clientId = event.callerContext && event.callerContext.clientId;
  if (typeof clientId !== 'string' || !/^[\w+]{1,128}$/.test(clientId)) throw new Error('no app client');
  const stored = await find(clientId);
  if (!stored || typeof stored !== 'object') throw new Error('this app client has no cpis claims');
  const claims = {};
  for (const name of CLAIMS) {
    if (typeof stored[name] === 'string') claims[name] = stored[name];
  }
  if (!claims.role || !claims.ods_code) throw new Error('this app client has no cpis claims');
  return claims;
}

function respond(event, claims) {
  event.response = {
    claimsAndScopeOverrideDetails: { accessTokenGeneration: { claimsToAddOrOverride: claims } },
  };
  return event;
}

exports.claimsFor = claimsFor;
exports.respond = respond;
exports.CLAIMS = CLAIMS;
exports.handler = async (event) => respond(event, await claimsFor(event, lookup));
