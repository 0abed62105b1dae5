// TMA tiled loads (PTX ISA, "Data Movement and Conversion Instructions: cp.async.bulk.tensor",
// tiled mode, .shared::cluster.global.mbarrier::complete_tx::bytes; "Tensors": bounding box,
// out-of-bounds access, "Tensor swizzling modes") from the emulator's tensor-map encoding
// (PaTensorMapEmu in csrc/pa_tma.h).
//
// Semantics. The box of box_dim[0] x ... elements whose first element is at the coordinates
// (c0, ..., c{r-1}) (innermost first, signed) is copied to shared memory densely, dimension 0
// fastest; elements outside the tensor (a coordinate < 0 or >= global_dim) are written as zeros.
// Swizzle: the 16-byte chunk index (address bits 4..6) is XORed with the 128-byte line index
// (bits 7..9), 3 bits for 128B, 2 for 64B, 1 for 32B, on the shared-window address. When the
// copy has landed, a complete-tx of the whole box's bytes (out-of-bounds ones included) is
// performed on the mbarrier.
//
// When it lands: on a GPU, any time after the issue; a thread observes it through the
// mbarrier. The schedules take the extremes as for cp.async: ascending lands a copy when some
// thread waits on its mbarrier (or when nothing else can run), descending at its issue, random
// by a seeded coin per copy. So reading the destination without waiting on the mbarrier, or
// issuing a load into a stage other threads still read, shows up as a schedule difference.
//
// Checks: the map's magic (a device-encoded map is refused) and every field; the instruction's
// dimensionality against the map's rank; the map's address 64-byte aligned; the destination
// inside shared memory, 128-byte aligned and, with a swizzle, aligned to the swizzle's repeat
// (1024/512/256 bytes) so that the pattern is the same whether it is taken from the address or
// from the offset in the box; the mbarrier live. Global reads are not bounds-checked (the map
// must describe memory the kernel may read, as on a GPU).
#include <string.h>

#include <string>

#include "sm90.h"

namespace pa {
namespace emu {

namespace {

uint32_t swizzle_row_bytes(uint32_t sw) {
    return sw == PA_TMA_SWIZZLE_128B ? 128u : sw == PA_TMA_SWIZZLE_64B ? 64u : sw == PA_TMA_SWIZZLE_32B ? 32u : 0u;
}
uint32_t swizzle_mask(uint32_t sw) {
    return sw == PA_TMA_SWIZZLE_128B ? 7u : sw == PA_TMA_SWIZZLE_64B ? 3u : sw == PA_TMA_SWIZZLE_32B ? 1u : 0u;
}
uint32_t dst_alignment(uint32_t sw) {
    return sw == PA_TMA_SWIZZLE_128B ? 1024u : sw == PA_TMA_SWIZZLE_64B ? 512u : sw == PA_TMA_SWIZZLE_32B ? 256u : 128u;
}
uint32_t dtype_bytes(uint32_t dtype) {
    switch (dtype) {
        case PA_TMA_DTYPE_U8: return 1;
        case PA_TMA_DTYPE_U16:
        case PA_TMA_DTYPE_F16:
        case PA_TMA_DTYPE_BF16: return 2;
        case PA_TMA_DTYPE_U32:
        case PA_TMA_DTYPE_I32:
        case PA_TMA_DTYPE_F32: return 4;
        case PA_TMA_DTYPE_U64:
        case PA_TMA_DTYPE_I64:
        case PA_TMA_DTYPE_F64: return 8;
        default: return 0;
    }
}

uint64_t box_bytes(const PaTensorMapEmu &m) {
    uint64_t n = m.elem_bytes;
    for (uint32_t d = 0; d < m.rank; d++) n *= m.box_dim[d];
    return n;
}

std::string validate(const PaTensorMapEmu &m) {
    if (m.magic != PA_TMA_EMU_MAGIC) {
        return "the tensor map is not in the emulator's encoding (magic " + std::to_string(m.magic) +
               "): encode it with TensorMapDesc::encode_emulator, not encode_device";
    }
    if (m.rank < 1 || m.rank > PA_TMA_MAX_RANK) return "tensor map rank " + std::to_string(m.rank) + " is outside 1..5";
    const uint32_t eb = dtype_bytes(m.dtype);
    if (eb == 0 || eb != m.elem_bytes) return "tensor map dtype " + std::to_string(m.dtype) + " / element size mismatch";
    if (m.global_address % 16 != 0) return "tensor map global address is not 16-byte aligned";
    if (m.global_stride[0] != eb) return "tensor map stride of dimension 0 must be the element size";
    for (uint32_t d = 0; d < PA_TMA_MAX_RANK; d++) {
        const auto dim = [d] { return "dimension " + std::to_string(d); };
        if (d >= m.rank) {
            if (m.global_dim[d] != 1 || m.box_dim[d] != 1) return "tensor map: unused " + dim() + " must have extent 1";
            continue;
        }
        if (m.global_dim[d] < 1 || m.global_dim[d] > (1ull << 32)) return "tensor map: " + dim() + " extent outside [1, 2^32]";
        if (m.box_dim[d] < 1 || m.box_dim[d] > PA_TMA_MAX_BOX) return "tensor map: box " + dim() + " outside [1, 256]";
        if (d > 0 && (m.global_stride[d] % 16 != 0 || m.global_stride[d] >= (1ull << 40))) {
            return "tensor map: " + dim() + " stride is not a multiple of 16 below 2^40";
        }
    }
    const uint64_t inner = static_cast<uint64_t>(m.box_dim[0]) * eb;
    if (inner % 16 != 0) return "tensor map: the box's inner extent (" + std::to_string(inner) + " bytes) is not a multiple of 16";
    if (m.swizzle > PA_TMA_SWIZZLE_128B) return "tensor map swizzle " + std::to_string(m.swizzle) + " is not supported";
    if (m.swizzle != PA_TMA_SWIZZLE_NONE && inner != swizzle_row_bytes(m.swizzle)) {
        return "tensor map: a swizzled box's inner extent (" + std::to_string(inner) +
               " bytes) must equal the swizzle span (" + std::to_string(swizzle_row_bytes(m.swizzle)) + ")";
    }
    return std::string();
}

// Performs one copy into shared memory (no mbarrier update).
void copy_box(Launch *L, const PendingTma &p) {
    const PaTensorMapEmu &m = p.map;
    const uint32_t eb = m.elem_bytes;
    const uint32_t row_bytes = m.box_dim[0] * eb;
    uint32_t rows = 1;
    for (uint32_t d = 1; d < PA_TMA_MAX_RANK; d++) rows *= m.box_dim[d];
    unsigned char row[PA_TMA_MAX_BOX * 8];
    const uint32_t mask = swizzle_mask(m.swizzle);
    unsigned char *view = async_view(L);  // the async proxy writes: both views see it
    for (uint32_t r = 0; r < rows; r++) {
        // coordinates of this row in dimensions 1..4
        uint32_t rest = r;
        bool inside = true;
        const unsigned char *base = reinterpret_cast<const unsigned char *>(m.global_address);
        for (uint32_t d = 1; d < PA_TMA_MAX_RANK; d++) {
            const int64_t g = static_cast<int64_t>(p.coords[d]) + (rest % m.box_dim[d]);
            rest /= m.box_dim[d];
            if (g < 0 || g >= static_cast<int64_t>(m.global_dim[d])) inside = false;
            else base += static_cast<uint64_t>(g) * m.global_stride[d];
        }
        for (uint32_t i = 0; i < m.box_dim[0]; i++) {
            const int64_t g = static_cast<int64_t>(p.coords[0]) + i;
            if (inside && g >= 0 && g < static_cast<int64_t>(m.global_dim[0]))
                memcpy(row + i * eb, base + static_cast<uint64_t>(g) * eb, eb);
            else
                memset(row + i * eb, 0, eb);
        }
        for (uint32_t c = 0; c < row_bytes; c += 16) {
            const uint32_t off = p.dst_offset + r * row_bytes + c;
            const uint32_t addr = shared_addr_of(L, off);
            const uint32_t swizzled = addr ^ (((addr >> 7) & mask) << 4);
            memcpy(L->smem + (swizzled - L->sm90.smem_base), row + c, 16);
            memcpy(view + (swizzled - L->sm90.smem_base), row + c, 16);
        }
    }
}

std::string land(Launch *L, const PendingTma &p) {
    MbarState *m = find_mbar(L, p.bar_offset);
    if (!m || !m->valid || m->generation != p.bar_generation) {
        return "the mbarrier at shared offset " + std::to_string(p.bar_offset) +
               " was invalidated or re-initialized while the TMA load issued at " +
               site_str(p.site) + " by thread " + std::to_string(p.thread) + " was in flight";
    }
    copy_box(L, p);
    m->inflight--;
    return mbar_complete_tx(L, m, p.bytes);
}

}  // namespace

std::string land_tmas(Launch *L, uint32_t bar_offset) {
    std::vector<PendingTma> &q = L->sm90.tmas;
    std::string first;
    size_t kept = 0;
    // Landing never queues new copies, so q is stable while we walk it.
    for (size_t i = 0; i < q.size(); i++) {
        if (bar_offset != UINT32_MAX && q[i].bar_offset != bar_offset) {
            q[kept++] = q[i];
            continue;
        }
        const std::string err = land(L, q[i]);
        if (first.empty()) first = err;
    }
    q.resize(kept);
    return first;
}

namespace sm90 {

void tma_load(void *dst, const PaTensorMap *map, void *bar, const int32_t *coords, int rank, Site site) {
    Launch *L = tl_launch;
    Thread *t = sm90_me();
    // Built only when a check fails: this runs for every TMA load.
    const auto what = [&] { return where(L, t) + ": cp.async.bulk.tensor." + std::to_string(rank) + "d at " + site_str(site) + ": "; };
    if (reinterpret_cast<uintptr_t>(map) % 64 != 0) fail_thread(what() + "the tensor map is not 64-byte aligned");
    PendingTma p;
    memcpy(&p.map, map, sizeof p.map);
    const std::string bad = validate(p.map);
    if (!bad.empty()) fail_thread(what() + bad);
    if (static_cast<uint32_t>(rank) != p.map.rank) {
        fail_thread(what() + "a " + std::to_string(rank) + "-d load with a rank-" + std::to_string(p.map.rank) + " tensor map");
    }
    p.bytes = static_cast<uint32_t>(box_bytes(p.map));
    const int64_t off = smem_offset(L, dst);
    if (off < 0 || !smem_range_ok(L, off, p.bytes)) {
        fail_thread(what() + "the " + std::to_string(p.bytes) + "-byte box at shared offset " +
                    std::to_string(off) + " does not fit in the CTA's " + std::to_string(L->smem_bytes) +
                    " bytes of dynamic shared memory");
    }
    const uint32_t align = dst_alignment(p.map.swizzle);
    if (shared_addr_of(L, static_cast<uint32_t>(off)) % align != 0) {
        fail_thread(what() + "the destination (shared address " +
                    std::to_string(shared_addr_of(L, static_cast<uint32_t>(off))) + ") is not " +
                    std::to_string(align) +
                    "-byte aligned (TMA needs 128 bytes; a swizzled box, its pattern's repeat: "
                    "align tiles with smem_align_up)");
    }
    MbarState *m = mbar_live(L, t, bar, "complete_tx (of a TMA load)", site);
    p.dst_offset = static_cast<uint32_t>(off);
    for (int d = 0; d < PA_TMA_MAX_RANK; d++) p.coords[d] = d < rank ? coords[d] : 0;
    p.bar_offset = m->offset;
    p.bar_generation = m->generation;
    p.site = site;
    p.thread = t->view.linear;
    m->inflight++;
    L->sm90.epoch++;
    const bool now = L->copy_timing == CopyTiming::AtIssue ||
                     (L->copy_timing == CopyTiming::Coin && (next_random(&L->rng) & 1u));
    if (now) {
        const std::string err = land(L, p);
        if (!err.empty()) fail_thread(where(L, t) + ": " + err);
    } else {
        L->sm90.tmas.push_back(p);
    }
}

void tma_prefetch_map(const PaTensorMap *map, Site site) {
    Launch *L = tl_launch;
    Thread *t = sm90_me();
    const auto what = [&] { return where(L, t) + ": prefetch.tensormap at " + site_str(site) + ": "; };
    if (reinterpret_cast<uintptr_t>(map) % 64 != 0) fail_thread(what() + "the tensor map is not 64-byte aligned");
    PaTensorMapEmu m;
    memcpy(&m, map, sizeof m);
    const std::string bad = validate(m);
    if (!bad.empty()) fail_thread(what() + bad);
}

}  // namespace sm90
}  // namespace emu
}  // namespace pa
