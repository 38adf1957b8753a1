//! Work split over scoped threads, with the results in input order, so that
//! the answer is the one a single thread gives (check, the ledger, history).

/// `f` of every chunk, in `chunks` order: the first on this thread, each of
/// the others on a scoped thread of its own. The chunk of a thread that
/// panicked is done again here.
pub fn map_chunks<C: Sync, R: Send>(chunks: &[C], f: impl Fn(&C) -> R + Sync) -> Vec<R> {
    let Some((first, rest)) = chunks.split_first() else { return Vec::new() };
    if rest.is_empty() {
        return vec![f(first)];
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = rest.iter().map(|c| s.spawn(move || f(c))).collect();
        let mut out = Vec::with_capacity(chunks.len());
        out.push(f(first));
        for (h, c) in handles.into_iter().zip(rest) {
            out.push(h.join().unwrap_or_else(|_| f(c)));
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::map_chunks;

    #[test]
    fn results_come_in_input_order() {
        let chunks: Vec<Vec<u32>> = (0..7).map(|i| (i * 10..i * 10 + 10).collect()).collect();
        let sums = map_chunks(&chunks, |c| c.iter().sum::<u32>());
        assert_eq!(sums, chunks.iter().map(|c| c.iter().sum::<u32>()).collect::<Vec<_>>());
        assert_eq!(map_chunks(&chunks[..1], |c| c.len()), [10]);
        assert!(map_chunks(&Vec::<Vec<u32>>::new(), |c| c.len()).is_empty());
    }
}
