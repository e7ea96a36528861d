//! The simulated model's KV cache (`--llm-kv-blocks`): a fixed pool of
//! blocks of `--llm-block-size` tokens, with prefix caching as vLLM's v1
//! `BlockPool` and `KVCacheManager` do it (vllm-project/vllm
//! `vllm/v1/core/block_pool.py`, `kv_cache_manager.py`, at
//! 00024d314514900f361ad072af6931e403b7f589):
//!
//! - a full block of a prompt is identified by a chained hash: its tokens
//!   and the hash of the block before it ([`BlockHasher`]), so equal hashes
//!   mean equal prefixes;
//! - a request's prompt reuses the blocks already cached for its longest
//!   cached prefix of full blocks (their prefill is skipped), always
//!   leaving its last token to compute, as vLLM does;
//! - a block is held by every running request that uses it (a count); a
//!   block no one holds stays cached, and is reused for new tokens in
//!   least-recently-freed order (LRU eviction), its hash then forgotten.
//!
//! Everything here is per block, never per token: a request's allocation
//! touches the blocks it adds.

use std::collections::{HashMap, VecDeque};

/// A block's index in the pool.
pub type BlockId = u32;

/// Chained hashes of a prompt's full blocks, fed one token id at a time.
#[derive(Debug, Clone)]
pub struct BlockHasher {
    block_size: u32,
    in_block: u32,
    /// The running hash of the block being filled (seeded by the previous
    /// block's hash).
    state: u64,
    hashes: Vec<u64>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl BlockHasher {
    pub fn new(block_size: u32) -> Self {
        Self {
            block_size: block_size.max(1),
            in_block: 0,
            state: FNV_OFFSET,
            hashes: Vec::new(),
        }
    }

    /// Adds one token id.
    pub fn push(&mut self, id: impl Into<u64>) {
        for b in id.into().to_le_bytes() {
            self.state = (self.state ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        self.in_block += 1;
        if self.in_block == self.block_size {
            let hash = self.state;
            self.hashes.push(hash);
            // The next block's hash starts from this one: a chain.
            self.state = (FNV_OFFSET ^ hash).wrapping_mul(FNV_PRIME);
            self.in_block = 0;
        }
    }

    /// The hashes of the full blocks (a last partial block has none).
    pub fn finish(self) -> Vec<u64> {
        self.hashes
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Block {
    /// Running requests holding it.
    holders: u32,
    /// The prefix it caches, when it is a full prompt block.
    hash: Option<u64>,
}

/// The pool: every block, the cached ones by hash, and the free ones in
/// eviction order.
#[derive(Debug)]
pub struct BlockPool {
    blocks: Vec<Block>,
    by_hash: HashMap<u64, BlockId>,
    /// Blocks no one holds, oldest freed first (cached or not). A block
    /// taken back by a cache hit is removed lazily: `free_count` counts
    /// the entries that are really free.
    free: VecDeque<BlockId>,
    free_count: usize,
}

/// What a prompt found in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The cached blocks of its longest cached prefix, in order.
    pub blocks: Vec<BlockId>,
}

impl BlockPool {
    pub fn new(blocks: u32) -> Self {
        Self {
            blocks: vec![Block::default(); blocks as usize],
            by_hash: HashMap::new(),
            free: (0..blocks).collect(),
            free_count: blocks as usize,
        }
    }

    pub fn total(&self) -> usize {
        self.blocks.len()
    }

    /// Blocks someone holds (what vLLM's `kv_cache_usage_perc` counts).
    pub fn used(&self) -> usize {
        self.blocks.len() - self.free_count
    }

    /// Blocks that can be handed out now (free, cached or not).
    pub fn available(&self) -> usize {
        self.free_count
    }

    /// The cached blocks of the longest prefix of `hashes`, capped so
    /// that at least one token of a `tokens`-token prompt is left to
    /// compute (vLLM recomputes the last token to get its logits).
    pub fn lookup(&self, hashes: &[u64], tokens: u64, block_size: u32) -> Lookup {
        let most = tokens.saturating_sub(1) / u64::from(block_size.max(1));
        let blocks = hashes
            .iter()
            .take(most as usize)
            .map_while(|h| self.by_hash.get(h).copied())
            .collect();
        Lookup { blocks }
    }

    /// Takes `found` (from [`BlockPool::lookup`], made now) and `new`
    /// further blocks; the first of those that are full prompt blocks
    /// (`hashes` past the found ones) are cached under their hashes.
    /// `None`, taking nothing, when too few blocks are available.
    pub fn allocate(&mut self, found: &Lookup, new: usize, hashes: &[u64]) -> Option<Vec<BlockId>> {
        // Found blocks that no one holds are counted free: taking them
        // uses up some of what is available.
        let idle_found = found
            .blocks
            .iter()
            .filter(|&&b| self.block(b).is_some_and(|x| x.holders == 0))
            .count();
        if self.free_count < idle_found + new {
            return None;
        }
        let mut out = Vec::with_capacity(found.blocks.len() + new);
        for &b in &found.blocks {
            self.hold(b);
            out.push(b);
        }
        let mut to_cache = hashes.iter().skip(found.blocks.len());
        for _ in 0..new {
            let b = self.take_free()?;
            if let Some(&hash) = to_cache.next() {
                // A concurrent request may have cached the same prefix:
                // the first block keeps the hash.
                if let std::collections::hash_map::Entry::Vacant(e) = self.by_hash.entry(hash) {
                    e.insert(b);
                    if let Some(block) = self.blocks.get_mut(b as usize) {
                        block.hash = Some(hash);
                    }
                }
            }
            out.push(b);
        }
        Some(out)
    }

    /// One more block for a running request's new tokens (not cached).
    pub fn grow(&mut self) -> Option<BlockId> {
        self.take_free()
    }

    /// A request lets its blocks go; cached ones stay cached until
    /// evicted. Freed in reverse, so a request's tail is evicted before
    /// its prefix (vLLM frees in reverse order for the same reason).
    pub fn release(&mut self, blocks: &[BlockId]) {
        for &b in blocks.iter().rev() {
            if let Some(block) = self.blocks.get_mut(b as usize) {
                block.holders = block.holders.saturating_sub(1);
                if block.holders == 0 {
                    self.free.push_back(b);
                    self.free_count += 1;
                }
            }
        }
    }

    fn block(&self, b: BlockId) -> Option<&Block> {
        self.blocks.get(b as usize)
    }

    fn hold(&mut self, b: BlockId) {
        if let Some(block) = self.blocks.get_mut(b as usize) {
            if block.holders == 0 {
                // Out of the free queue (its entry there is skipped when
                // reached).
                self.free_count -= 1;
            }
            block.holders += 1;
        }
    }

    /// The least recently freed block no one holds, its cached hash
    /// forgotten (evicted).
    fn take_free(&mut self) -> Option<BlockId> {
        while let Some(b) = self.free.pop_front() {
            let Some(block) = self.blocks.get_mut(b as usize) else {
                continue;
            };
            if block.holders > 0 {
                // Taken back by a cache hit after it was freed.
                continue;
            }
            if let Some(hash) = block.hash.take() {
                if self.by_hash.get(&hash) == Some(&b) {
                    self.by_hash.remove(&hash);
                }
            }
            block.holders = 1;
            self.free_count -= 1;
            return Some(b);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(ids: &[u32], block_size: u32) -> Vec<u64> {
        let mut h = BlockHasher::new(block_size);
        ids.iter().for_each(|&i| h.push(i));
        h.finish()
    }

    #[test]
    fn block_hashes_chain_so_equal_hashes_mean_equal_prefixes() {
        let a = hashes(&[1, 2, 3, 4, 5, 6, 7], 2);
        let b = hashes(&[1, 2, 3, 4, 9, 9], 2);
        let c = hashes(&[3, 4, 1, 2], 2);
        assert_eq!(a.len(), 3, "7 tokens: three full blocks of 2");
        assert_eq!(a[..2], b[..2]);
        assert_ne!(a[2], b[2]);
        // The same block after another prefix is another block.
        assert_ne!(a[1], c[0]);
        assert_ne!(a[0], c[1]);
    }

    #[test]
    fn a_prompt_reuses_its_cached_prefix_and_keeps_its_last_token_to_compute() {
        let mut pool = BlockPool::new(8);
        let first = hashes(&(0..64).collect::<Vec<_>>(), 16);
        let found = pool.lookup(&first, 64, 16);
        assert!(found.blocks.is_empty(), "nothing cached yet");
        let held = pool
            .allocate(&found, 4, &first)
            .unwrap_or_else(|| panic!("room"));
        assert_eq!((pool.used(), pool.available()), (4, 4));
        pool.release(&held);
        assert_eq!((pool.used(), pool.available()), (0, 8));
        // The same 64 tokens and 20 more: the 4 blocks are cached, all
        // 4 reused (64 of 84 tokens), the rest computed.
        let longer = hashes(&(0..84).collect::<Vec<_>>(), 16);
        let found = pool.lookup(&longer, 84, 16);
        assert_eq!(found.blocks, held);
        // The same 64 alone: at most 3 blocks, so one token is computed.
        assert_eq!(pool.lookup(&first, 64, 16).blocks.len(), 3);
        let again = pool
            .allocate(&found, 2, &longer)
            .unwrap_or_else(|| panic!("room"));
        assert_eq!(again[..4], held[..]);
        assert_eq!((pool.used(), pool.available()), (6, 2));
    }

    #[test]
    fn shared_blocks_are_held_by_each_and_free_only_when_all_let_go() {
        let mut pool = BlockPool::new(4);
        let h = hashes(&(0..40).collect::<Vec<_>>(), 16);
        let a = pool
            .allocate(&pool.lookup(&h, 40, 16), 3, &h)
            .unwrap_or_else(|| panic!("room"));
        let found = pool.lookup(&h, 40, 16);
        assert_eq!(found.blocks, a[..2], "the two full blocks");
        let b = pool
            .allocate(&found, 1, &h)
            .unwrap_or_else(|| panic!("room"));
        assert_eq!((pool.used(), pool.available()), (4, 0));
        assert!(pool.grow().is_none(), "the pool is full");
        pool.release(&a);
        assert_eq!(pool.used(), 3, "b still holds the shared two");
        pool.release(&b);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn freed_blocks_stay_cached_until_evicted_least_recently_freed_first() {
        let mut pool = BlockPool::new(4);
        let x = hashes(&(0..32).collect::<Vec<_>>(), 16);
        let y = hashes(&(100..132).collect::<Vec<_>>(), 16);
        let xs = pool
            .allocate(&pool.lookup(&x, 33, 16), 2, &x)
            .unwrap_or_else(|| panic!("room"));
        let ys = pool
            .allocate(&pool.lookup(&y, 33, 16), 2, &y)
            .unwrap_or_else(|| panic!("room"));
        pool.release(&xs);
        pool.release(&ys);
        // Both cached while free.
        assert_eq!(pool.lookup(&x, 33, 16).blocks.len(), 2);
        assert_eq!(pool.lookup(&y, 33, 16).blocks.len(), 2);
        // Two new blocks evict x's (freed first), tail before prefix.
        let z = pool.allocate(&Lookup { blocks: vec![] }, 2, &[]);
        assert!(z.is_some());
        assert!(pool.lookup(&x, 33, 16).blocks.is_empty());
        assert_eq!(pool.lookup(&y, 33, 16).blocks.len(), 2);
        // A hit on y takes its blocks back out of the free queue.
        let found = pool.lookup(&y, 33, 16);
        let again = pool.allocate(&found, 0, &y);
        assert_eq!(again.as_deref(), Some(&ys[..]));
        assert_eq!(pool.available(), 0);
        assert!(pool.grow().is_none(), "no block is free");
        // Too few blocks: nothing taken.
        let refused = pool.allocate(&Lookup { blocks: vec![] }, 1, &[]);
        assert!(refused.is_none());
        assert_eq!(pool.used(), 4);
    }
}
