//go:build !linux

package actions

// StrikeFull returns an error: nftables needs Linux.
func (t *Table) StrikeFull() (map[string]uint64, error) { return nil, errNeedsLinux }

// EvictFull returns an error: nftables needs Linux.
func (t *Table) EvictFull(sets []string) ([]string, error) { return nil, errNeedsLinux }

// StrikeSets returns an error: nftables needs Linux.
func (t *Table) StrikeSets() ([]StrikeSet, error) { return nil, errNeedsLinux }
