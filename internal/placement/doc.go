// Package placement decides which relays hold which parts of which
// catalogs. It is pure computation: the directory gathers the inputs
// (catalog shard sizes, enrolled relays, what they reported complete,
// download counts) and sends the output to relays; nothing here does I/O.
//
// # Model
//
// A catalog is cut into 2^Bits shards by path hash: a path belongs to the
// shard numbered by the top Bits bits of catalog.PathHash(path) (see
// ShardOf). The hashed-bin delegation of the signed metadata uses the same
// leading bits, so a shard is a run of whole bins. The directory chooses
// Bits per catalog (2^10 to 2^16 shards suit catalogs of thousands to
// millions of artifacts) and knows each shard's bytes and artifact count.
//
// A relay offers Capacity bytes, has a Weight (its share when relays
// compete for a shard; the directory derives it from bandwidth) and
// carries some catalogs, all of them by default. Every shard should be on
// R relays (Input.R, DefaultR); hot paths, individual artifacts that are
// downloaded a lot, may ask for more.
//
// # Algorithm
//
// Plan ranks the relays that carry a catalog, separately for each shard,
// by weighted rendezvous hashing (highest random weight): relay r scores
// w_r / -ln(u) for u = hash(shard, r) in (0,1), and a shard prefers higher
// scores. Rendezvous hashing rather than a ring because it needs no virtual
// nodes to spread evenly, takes weights exactly (relay r wins a shard with
// probability w_r/Σw), has no state to keep besides the relay list, and
// moves the least possible when the list changes: a shard's ranking of the
// relays that remain is not affected by a relay joining or leaving, so
// only the shards that ranked that relay among their first R move.
//
// Capacity bounds the ranking. Shards are matched to relays R times, one
// replica per round, so that when capacity is short every shard gets a
// copy before any gets a second. Each round is a stable matching: a shard
// asks relays in its rank order; a relay with room accepts; a full relay
// evicts shards it wants less to make room, or declines. A relay wants the
// shards it already holds (assigned in Input.Previous, or reported
// complete) more than others, and otherwise the shards that rank it
// higher. With ample capacity nobody is full and the result is plain
// rendezvous hashing: a relay joining N equal relays takes about 1/(N+1)
// of the stored bytes and nothing else moves; a relay leaving hands its
// shards, and only those, to the next relays in their rankings. With tight
// capacity the preference for held shards keeps a relay's departure from
// reshuffling the rest. Shards are processed in the order of their
// rendezvous keys, which is deterministic and does not depend on the
// caller's ordering: the same input always gives the same Placement.
//
// Hot paths get extra holders after the shards, ranked by rendezvous
// hashing of the path, with the room the shards left.
//
// # Invariants
//
//   - No relay gets shards of a catalog it does not carry, and a draining
//     relay gets none.
//   - A relay's Assigned, Retain and Hot bytes stay within its capacity,
//     unless the shards it holds complete exceed it on their own (its
//     quota shrank).
//   - A shard is never assigned twice to one relay; a hot path's extra
//     holders are not holders of its shard.
//   - Make before break: a shard keeps min(R, its complete holders)
//     complete copies among its assigned and retained relays. Plan puts
//     relays that hold a shard complete but are no longer assigned it in
//     Retain until enough assigned relays report it complete, so a shard
//     never loses its last verified copy to a rebalance. Retained bytes
//     count against capacity; a relay that cannot fit its new shards
//     beside them gets fewer new shards for now (they are offered
//     elsewhere) rather than waiting on a relay that waits on it.
//   - Whatever cannot be placed R times is listed in Placement.Short.
//
// # Calling Plan
//
// Plan is a function of its input: it keeps nothing between calls. The
// directory calls it again whenever the input changes in a way that
// matters (a relay enrolls, leaves the rotation, changes its quota or its
// catalogs, reports shards complete; a catalog's shard sizes drift; the
// hot list changes), and passes the last Placement as Input.Previous.
// A plan for 1,000 relays and three catalogs of 4,096 shards takes from
// a tenth of a second (ample capacity) to a few tenths (tight capacity,
// unequal weights) on two cores (BenchmarkPlan), so a directory can afford
// one every few seconds, debounced. A directory that restarts without its last
// Placement loses nothing when capacity is ample (rendezvous hashing
// recomputes the same answer) and keeps shards where relays report them
// complete otherwise.
//
// Placement.ByRelay (or For) turns the per-shard view into each relay's
// Assignment, as runs of shards (Ranges); Contains tells whether a path
// falls in them. Diff gives what a relay gains and may drop between two
// placements, and Moved the bytes a change copies.
//
// Counter keeps the decayed download counts that hot paths come from.
package placement
