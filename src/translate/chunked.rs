//! A list kept as chunks shared by `Arc`, so that a list made of kept
//! translations (each service's clusters) copies none of their items.

use std::sync::Arc;

/// Items in chunks shared with whatever made them: each service's
/// translation is one chunk, so the list of every service's clusters costs
/// a pointer per service instead of a copy of every cluster, and freeing it
/// frees no cluster that a later build still holds. Read like a slice: in
/// order, or by position.
#[derive(Debug)]
pub struct ChunkedList<T> {
    chunks: Vec<Arc<Vec<T>>>,
    /// Each chunk's end: the position after its last item in the whole
    /// list, to find an item by position without walking the chunks.
    ends: Vec<usize>,
}

impl<T> ChunkedList<T> {
    /// An empty list.
    pub fn new() -> Self {
        ChunkedList {
            chunks: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// Appends `chunk`'s items, sharing them (an empty chunk is not kept).
    pub fn push_chunk(&mut self, chunk: Arc<Vec<T>>) {
        if chunk.is_empty() {
            return;
        }
        let end = self.len() + chunk.len();
        self.chunks.push(chunk);
        self.ends.push(end);
    }

    /// How many items.
    pub fn len(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// True without items.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The item at `position` in the whole list.
    pub fn get(&self, position: usize) -> Option<&T> {
        let chunk = self.ends.partition_point(|&end| end <= position);
        let start = chunk.checked_sub(1).map_or(0, |before| self.ends[before]);
        self.chunks.get(chunk)?.get(position - start)
    }

    /// Every item, in order.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            chunks: self.chunks.iter(),
            current: [].iter(),
        }
    }

    /// Applies `f` to every item. A chunk still shared elsewhere is copied
    /// first, so what shares it keeps its items as they were.
    pub fn map_each(&mut self, mut f: impl FnMut(&mut T))
    where
        T: Clone,
    {
        for chunk in &mut self.chunks {
            Arc::make_mut(chunk).iter_mut().for_each(&mut f);
        }
    }
}

impl<T> Default for ChunkedList<T> {
    fn default() -> Self {
        Self::new()
    }
}

// Not derived: a derived `Clone` would ask `T: Clone`, and cloning the list
// copies only its `Arc`s.
impl<T> Clone for ChunkedList<T> {
    fn clone(&self) -> Self {
        ChunkedList {
            chunks: self.chunks.clone(),
            ends: self.ends.clone(),
        }
    }
}

/// Equal items in the same order, however they are chunked.
impl<T: PartialEq> PartialEq for ChunkedList<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<T> From<Vec<T>> for ChunkedList<T> {
    fn from(items: Vec<T>) -> Self {
        let mut list = ChunkedList::new();
        list.push_chunk(Arc::new(items));
        list
    }
}

impl<T> std::ops::Index<usize> for ChunkedList<T> {
    type Output = T;

    /// Like a slice's: panics when `position` is out of bounds.
    fn index(&self, position: usize) -> &T {
        match self.get(position) {
            Some(item) => item,
            None => panic!("position {position} out of a list of {} items", self.len()),
        }
    }
}

impl<'a, T> IntoIterator for &'a ChunkedList<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

/// The items of a [`ChunkedList`], in order.
#[derive(Debug)]
pub struct Iter<'a, T> {
    chunks: std::slice::Iter<'a, Arc<Vec<T>>>,
    current: std::slice::Iter<'a, T>,
}

// Not derived, for the same reason as the list's.
impl<T> Clone for Iter<'_, T> {
    fn clone(&self) -> Self {
        Iter {
            chunks: self.chunks.clone(),
            current: self.current.clone(),
        }
    }
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        loop {
            if let Some(item) = self.current.next() {
                return Some(item);
            }
            self.current = self.chunks.next()?.iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::ChunkedList;

    fn list(chunks: &[&[u32]]) -> ChunkedList<u32> {
        let mut list = ChunkedList::new();
        for c in chunks {
            list.push_chunk(Arc::new(c.to_vec()));
        }
        list
    }

    #[test]
    fn reads_like_the_flat_list() {
        let l = list(&[&[1, 2], &[], &[3], &[4, 5, 6]]);
        assert_eq!(l.len(), 6);
        assert_eq!(l.iter().copied().collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
        let by_position: Vec<u32> = (0..l.len()).map(|i| l[i]).collect();
        assert_eq!(by_position, [1, 2, 3, 4, 5, 6]);
        assert_eq!(l.get(6), None);
        assert!(ChunkedList::<u32>::new().is_empty());
        assert_eq!(ChunkedList::<u32>::new().get(0), None);
    }

    #[test]
    fn equal_items_are_equal_lists_however_chunked() {
        assert_eq!(list(&[&[1, 2], &[3]]), list(&[&[1], &[2, 3]]));
        assert_ne!(list(&[&[1, 2]]), list(&[&[1, 2, 3]]));
        assert_eq!(ChunkedList::from(vec![1, 2, 3]), list(&[&[1], &[2, 3]]));
    }

    #[test]
    fn a_chunk_is_shared_not_copied_and_changing_it_leaves_the_sharer_alone() {
        let chunk = Arc::new(vec![1, 2]);
        let mut l = ChunkedList::new();
        l.push_chunk(Arc::clone(&chunk));
        assert!(std::ptr::eq(&l[0], &chunk[0]));
        l.map_each(|x| *x += 10);
        assert_eq!(l.iter().copied().collect::<Vec<_>>(), [11, 12]);
        assert_eq!(*chunk, [1, 2]);
    }
}
