/** Function timeouts (seconds): the queue's visibility timeout is derived from the dispatcher's. */
export const TIMEOUTS = { api: 10, dispatcher: 30, relay: 60 } as const;

/** The service-table actions of each function, from the ports it uses (crates/aws/src/dynamo/, a file per port). */
export const SERVICE_TABLE_ACTIONS: Record<string, string[]> = {
  // Uploads (BatchWriteItem puts and deletes, BatchGetItem counts), receipts
  // (PutItem, GetItem, Query), directory (GetItem, PutItem), plan listing
  // (Query gsi1), inbox (Query gsi1, GetItem) and acknowledgement (UpdateItem).
  'plan-upload': [
    'dynamodb:BatchGetItem',
    'dynamodb:BatchWriteItem',
    'dynamodb:GetItem',
    'dynamodb:PutItem',
    'dynamodb:Query',
    'dynamodb:UpdateItem',
  ],
  // Plans and directory reads; the check receipt (UpdateItem); the access, its
  // collapse item, its ASNs and the request's audit event in one
  // TransactWriteItems (authorised as PutItem + UpdateItem here and PutItem on
  // the audit table: CheckLedger in crates/aws/src/dynamo/accesses.rs);
  // history (Query).
  'attendance-check': ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
  // Read-only.
  'history-query': ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query'],
  // begin_delivery (UpdateItem, consistent GetItem), the batch's councils (BatchGetItem),
  // record_deliveries: each delivery's record and audit event in one TransactWriteItems
  // (authorised as UpdateItem here and PutItem on the audit table), or finish_delivery
  // (UpdateItem) and the audit PutItem when it falls back. PublishBatch is sns:Publish.
  'notification-dispatch': ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem'],
  // claim_undelivered: Query gsi2 then a conditional UpdateItem per ASN; the
  // feed check (Query on FEEDS); the channel check (directory GetItem per council
  // with a feed); the daily purge (Scan, then BatchWriteItem deletes).
  'outbox-relay': ['dynamodb:BatchWriteItem', 'dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:UpdateItem'],
  // The portal's pages run the API's use cases: the check (as attendance-check), the inbox and
  // its acknowledgement, the directory, the upload history (Query, GetItem); and its own
  // sessions, sign-in attempts and check results (PutItem, GetItem, a conditional PutItem for a
  // touch; crates/aws/src/dynamo/portal.rs). Its DeleteItem (sign-out, a sign-in attempt taken)
  // is granted on its own items only (stack/portal.ts).
  portal: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
  // The upload use case as plan-upload runs it (a MESH file is an upload), the directory
  // (GetItem) and the operator's mailbox map (GetItem; PutItem in a transaction; DeleteItem,
  // scoped: MESH_MAP_DELETE).
  'mesh-poll': [
    'dynamodb:BatchGetItem',
    'dynamodb:BatchWriteItem',
    'dynamodb:GetItem',
    'dynamodb:PutItem',
    'dynamodb:Query',
    'dynamodb:UpdateItem',
  ],
};

/**
 * mesh-poll (with MESH on): polled every `everyMinutes`, one invocation at a time (reserved
 * concurrency 1), each within `timeoutSeconds` (less than the schedule, so a slow poll is over
 * before the next is due); the operator is told when no poll has succeeded for `alarmMinutes`.
 */
export const MESH_POLL = { everyMinutes: 5, timeoutSeconds: 240, alarmMinutes: 30 } as const;

/**
 * mesh-poll's table actions beyond the upload path's (which are plan-upload's): the operator's
 * map writes two items in one TransactWriteItems, and a relink or unlink deletes them
 * (crates/aws/src/dynamo/mailboxes.rs). DeleteItem is granted only on items whose partition key
 * is a council's (`LA#<ODS>`) or a mailbox's (`MESH#<id>`), never a child's plans.
 */
export const MESH_MAP_DELETE = { actions: ['dynamodb:DeleteItem'], leadingKeys: ['LA#*', 'MESH#*'] };

/** The enumeration watch's defaults, as in crates/domain/src/volume.rs (VolumePolicy). */
export const CHECK_VOLUME = { threshold: 100, periodMinutes: 10 };

/** Functions that pseudonymise children for the audit trail: the API functions and the portal. */
export const PSEUDONYM_READERS = ['plan-upload', 'attendance-check', 'history-query', 'portal'];

/**
 * Functions that append audit events (PutItem only; no function reads the audit table):
 * the API functions, the dispatcher, which audits each delivery to a duty team, and mesh-poll
 * (when MESH is on), which audits each council's upload file as the JSON route does.
 */
export const AUDIT_WRITERS = [...PSEUDONYM_READERS, 'notification-dispatch', 'mesh-poll'];

/** What outbox-relay's channel check calls (crates/aws/src/sns_status.rs). */
export const CHANNEL_STATUS_ACTIONS = { onCouncilTopics: ['sns:ListSubscriptionsByTopic'], account: ['sns:ListPhoneNumbersOptedOut'] };

/**
 * Seconds after the access by which an ASN must have reached its council's channels before
 * the operator is told. Normal delivery takes seconds; the queue's own age alarm is at 300 s.
 */
export const OUTBOX_AGE_ALARM_SECONDS = 900;

/** What plan-upload's (and the portal's directory page's) TopicSync calls (crates/aws/src/sns.rs). */
export const TOPIC_SYNC_ACTIONS = [
  'sns:CreateTopic',
  'sns:ListSubscriptionsByTopic',
  'sns:Subscribe',
  'sns:Unsubscribe',
];
