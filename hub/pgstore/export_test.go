package pgstore

// FeedReads counts the reads of kind's change log its change feed made.
func (s *Store) FeedReads(kind string) uint64 { return s.feed(kind).reads.Load() }

// WakeupGap is the least time between two sends of wake-ups.
const WakeupGap = wakeupGap

// SetPage sets how many objects a page of f's whole lists holds.
func (f *Follow) SetPage(n int) { f.page = n }
