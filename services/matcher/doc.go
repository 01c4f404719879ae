// Package matcher is Vigil's 1:N matcher: for a face template, the best-matching
// persons of a workspace.
//
// # Index
//
// Each replica keeps its persons' templates in memory (Index), one gallery per
// workspace and extractor model. A row is stored as 16-bit fixed point with one scale
// per vector, split into two int8 planes: the high bytes are the scan codes, the low
// bytes the residual (quantize.go). A search scans the codes of every row on all cores
// with an int8 dot-product kernel (AVX-512 VNNI, AVX2, or portable Go, picked at start;
// kernel*.go), keeps the best candidates per query in small heaps, re-scores them in
// float32 against the 16-bit rows (error below 1e-5 in cosine), keeps each person's
// best template, applies the threshold and returns the top k. A batch of queries
// reads each 256-row block once for all its queries. Memory is about 0.7x the raw
// float32 bytes (ids and maps included); the exact float32 rows stay in PostgreSQL.
//
// Galleries of at least Config.ANNMinTemplates rows (default 250,000) also get an IVF
// index (ivf.go): the rows are regrouped into about sqrt(n) lists by spherical k-means
// and a query scans the Config.NProbe lists nearest to it (default: an eighth). 250,000 is where an exact
// scan stops being "a few milliseconds" on two cores (about 2-3 ms); below it the IVF
// would trade recall for little time. Callers can always ask for SEARCH_MODE_EXACT.
// bench/matcher measures recall and speed of both against FAISS.
//
// # Source of truth
//
// PostgreSQL holds every template (bytea float32) and person's groups (store.go). A
// change is written there first, then applied to the index before the call returns,
// so the next search sees it; at start the index is rebuilt from PostgreSQL with
// binary COPY in the fx start hook, before the gRPC server reports SERVING.
//
// # Shards
//
// With a shard map (Config.Shards) each replica owns the persons whose FNV-1a hash
// falls in its shard and loads only those rows. Writes are routed to the owners;
// searches fan out to every shard and merge (cluster.go). A shard that fails or
// misses Config.ShardTimeout makes the answer partial, naming the missing shards.
package matcher
