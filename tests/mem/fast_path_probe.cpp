// Functions that only run the pool's inline fast paths, for check_fast_path_inline.sh to disassemble: in an
// optimised build none of them may contain a call (every way off the fast path is a tail jump).
#include "engine/mem/pool.hpp"

extern "C" {
void* cf_probe_pool_allocate(cf::mem::Pool& pool) { return pool.allocate(64); }
void* cf_probe_pool_allocate_class(cf::mem::Pool& pool) { return pool.allocate_class(0); }
void cf_probe_pool_free(cf::mem::Pool& pool, void* block) { pool.free(block); }
}
