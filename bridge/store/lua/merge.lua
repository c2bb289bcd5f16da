-- merge: a sharded layout's replay of an unroutable dead letter into its conversation's
-- shard (the letter waited in its link's shard; the caller drops it there after this).
-- Includes: prelude.
-- ARGV[2] coalesce (ms), ARGV[3] ck, ARGV[4] a JSON array [name, entry, ...] of the letter's
-- changes. Newest wins against pending and applied, as for any replay. Returns 'replayed'.
local coalesce, ck = tonumber(ARGV[2]), ARGV[3]
merge_back(ck, cjson.decode(ARGV[4]), coalesce)
return 'replayed'
