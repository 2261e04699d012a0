-- The built-in Telegram and GitHub integrations now derive Nitejar's keys (issue 15; the formats
-- are in ../shared/spec/nitejar-data.md), so history imported from Nitejar continues. Rows this
-- host stored in the earlier formats are rewritten here, so a platform redelivery of an earlier
-- update is still recognised and an existing conversation keeps its session. Only rows in an
-- earlier format match; OR IGNORE keeps a row whose new key already exists (then both forms
-- point at the same delivery and the old one is inert).

-- Telegram idempotency: update:<update_id> -> telegram:<update_id>.
UPDATE OR IGNORE idempotency_keys SET key = 'telegram:' || substr(key, 8)
WHERE key LIKE 'update:%'
  AND plugin_instance_id IN (SELECT id FROM plugin_instances WHERE type = 'telegram');

-- Telegram session: telegram:<chat>:<thread> -> telegram:<chat>:thread:<thread>.
UPDATE work_items
SET session_key = 'telegram:'
  || substr(session_key, 10, instr(substr(session_key, 10), ':') - 1)
  || ':thread:'
  || substr(session_key, 10 + instr(substr(session_key, 10), ':'))
WHERE integration_type = 'telegram'
  AND session_key LIKE 'telegram:%:%'
  AND session_key NOT LIKE 'telegram:%:thread:%';

-- Telegram source ref: telegram:chat:<chat>/message:<msg> -> telegram:<chat>[:<thread>]:<msg>
-- (the thread, when there was one, is in the response context).
UPDATE work_items
SET source_ref = 'telegram:'
  || substr(source_ref, 15, instr(source_ref, '/message:') - 15)
  || coalesce(':' || json_extract(response_context_json, '$.messageThreadId'), '')
  || ':'
  || substr(source_ref, instr(source_ref, '/message:') + 9)
WHERE integration_type = 'telegram'
  AND source_ref LIKE 'telegram:chat:%/message:%'
  AND (response_context_json IS NULL OR json_valid(response_context_json));

-- GitHub idempotency: <delivery> -> github:<delivery>.
UPDATE OR IGNORE idempotency_keys SET key = 'github:' || key
WHERE key NOT LIKE 'github:%'
  AND plugin_instance_id IN (SELECT id FROM plugin_instances WHERE type = 'github');

-- GitHub session: github:<owner>/<repo>#<n> -> <owner>/<repo>#issue:<n>.
UPDATE work_items
SET session_key = substr(session_key, 8, instr(session_key, '#') - 8)
  || '#issue:'
  || substr(session_key, instr(session_key, '#') + 1)
WHERE integration_type = 'github'
  AND session_key LIKE 'github:%#%';

-- GitHub source refs, from the (rewritten) session key <owner>/<repo>#issue:<n>:
--   github:<o>/<r>/issues/<n>#comment-<id> -> <o>/<r>#issue:<n>#comment:<id>
--   github:<o>/<r>/issues/<n>#<action>     -> <o>/<r>#issue:<n>
--   github:<o>/<r>/check-runs/<id>         -> <o>/<r>#pr:<n>#check:<id>
UPDATE work_items
SET source_ref = session_key || '#comment:' || substr(source_ref, instr(source_ref, '#comment-') + 9)
WHERE integration_type = 'github'
  AND source_ref LIKE 'github:%/issues/%#comment-%'
  AND session_key LIKE '%#issue:%';
UPDATE work_items
SET source_ref = session_key
WHERE integration_type = 'github'
  AND source_ref LIKE 'github:%/issues/%#%'
  AND session_key LIKE '%#issue:%';
UPDATE work_items
SET source_ref = substr(session_key, 1, instr(session_key, '#issue:') - 1)
  || '#pr:'
  || substr(session_key, instr(session_key, '#issue:') + 7)
  || '#check:'
  || substr(source_ref, instr(source_ref, '/check-runs/') + 12)
WHERE integration_type = 'github'
  AND source_ref LIKE 'github:%/check-runs/%'
  AND session_key LIKE '%#issue:%';
