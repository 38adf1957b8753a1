//! Maximum bipartite matching between approval slots and people.
//!
//! Why a matching and not a count: a slot may accept several groups and a
//! person may belong to several groups, so "3 approvals, of which 1 from
//! security" cannot be checked by counting per group — one security engineer
//! who is also a manager would otherwise be counted twice. The question
//! "can every slot get its own, distinct, eligible person?" is exactly a
//! maximum bipartite matching, which is what this module computes.
//!
//! The algorithm is Kuhn's augmenting-path search (O(slots · edges)), written
//! iteratively so that deep augmenting paths cannot overflow the stack. The
//! instances are small (a handful of slots), so its simplicity wins over
//! Hopcroft–Karp. Slots are processed in order and each slot's people in the
//! order given, which makes the result deterministic.

/// Computes a maximum matching.
///
/// `slots_to_people[s]` lists the people (indices in `0..people`) who may
/// fill slot `s`. Returns, for each slot, the person assigned to it, if any.
/// Every person is assigned to at most one slot, every assignment is one of
/// the slot's listed people, and the number of assigned slots is maximum.
///
/// Out-of-range person indices are ignored; duplicates are harmless.
#[must_use]
pub fn max_matching(slots_to_people: &[Vec<usize>], people: usize) -> Vec<Option<usize>> {
    let mut person_of_slot: Vec<Option<usize>> = vec![None; slots_to_people.len()];
    let mut slot_of_person: Vec<Option<usize>> = vec![None; people];
    let mut visited = vec![false; people];
    for (root, fits) in slots_to_people.iter().enumerate() {
        // A free person who fits is taken directly: this keeps earlier
        // assignments where they are whenever possible (stable, readable
        // results) and avoids a search.
        let free = fits.iter().copied().find(|&p| matches!(slot_of_person.get(p), Some(None)));
        if let Some(p) = free {
            person_of_slot[root] = Some(p);
            slot_of_person[p] = Some(root);
            continue;
        }
        visited.fill(false);
        augment(root, slots_to_people, &mut person_of_slot, &mut slot_of_person, &mut visited);
    }
    person_of_slot
}

/// Looks for an augmenting path starting at the unmatched slot `root` and
/// applies it. Returns whether the matching grew.
fn augment(root: usize, adjacency: &[Vec<usize>], person_of_slot: &mut [Option<usize>], slot_of_person: &mut [Option<usize>], visited: &mut [bool]) -> bool {
    // DFS frames: (slot, index of the next neighbour to try).
    let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
    // via[k] is the person that leads from stack[k] to stack[k + 1].
    let mut via: Vec<usize> = Vec::new();
    loop {
        let Some(top) = stack.last_mut() else {
            return false;
        };
        let (slot, next) = *top;
        let Some(&person) = adjacency.get(slot).and_then(|ps| ps.get(next)) else {
            stack.pop();
            via.pop();
            continue;
        };
        top.1 += 1;
        match visited.get_mut(person) {
            Some(seen) if !*seen => *seen = true,
            _ => continue, // already on a tried path, or out of range
        }
        via.push(person);
        match slot_of_person.get(person).copied().flatten() {
            Some(taken_slot) => stack.push((taken_slot, 0)),
            None => {
                // Free person found: shift every person on the path one slot
                // back, which frees nobody and matches `root`.
                for (&(s, _), &p) in stack.iter().zip(via.iter()) {
                    if let Some(entry) = person_of_slot.get_mut(s) {
                        *entry = Some(p);
                    }
                    if let Some(entry) = slot_of_person.get_mut(p) {
                        *entry = Some(s);
                    }
                }
                return true;
            }
        }
    }
}
