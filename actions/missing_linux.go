//go:build linux

package actions

import (
	"bytes"
	"slices"

	"github.com/google/nftables"
)

// Missing reports what of Spec() the kernel lacks, in a stable order: the
// table ("table inet sentry", and then nothing else), each set missing or
// of another type or flags ("set blocked4", "set listen_tcp", "set
// fs0_rate4", ...), each chain missing or on another hook or priority
// ("chain input", "chain firststrike", "chain advanced", ...), each ban
// chain's drop rule ("rule input @blocked6", the IPv4 one masking to
// IPv4Prefix) and each chain of first strike or advanced mode without its
// rules ("rules of chain strike"). Empty means nothing is missing; Apply
// repairs whatever is. An error means the kernel could not be asked.
func (t *Table) Missing() ([]string, error) {
	if t.view != nil {
		// Read over the view's connection: a check every few seconds
		// must not hold up a Ban.
		return t.view.Missing()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.ready()
	if err != nil {
		return nil, err
	}
	st, err := t.readState(c)
	if err != nil {
		return nil, err
	}
	if !st.exists {
		return []string{"table inet " + t.spec.Table}, nil
	}
	o := newObjects(&t.spec)
	var missing []string
	for _, want := range o.sets() {
		if got := st.set(want.Name); got == nil || setShape(got, want) != "" {
			missing = append(missing, "set "+want.Name)
		}
	}
	// The rules each chain of first strike and advanced mode must hold.
	wantRules := map[string]int{}
	if o.fs != nil {
		rules, err := o.fs.rules(o, func(*nftables.Set, []nftables.SetElement) error { return nil })
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			wantRules[r.Chain.Name]++
		}
	}
	if o.adv != nil {
		wantRules[AdvancedChain] = len(o.adv.rules(o))
	}
	for _, want := range o.chains() {
		got := st.chain(want.Name)
		if got == nil || (want.Hooknum != nil && !sameBaseChain(got, want)) {
			missing = append(missing, "chain "+want.Name)
			continue
		}
		rules, err := c.GetRules(o.table, got)
		if err != nil {
			return nil, t.readError("read rules of chain "+want.Name, err)
		}
		if n, ok := wantRules[want.Name]; ok {
			if len(rules) != n {
				missing = append(missing, "rules of chain "+want.Name)
			}
			continue
		}
		// A ban chain: its three drop rules, each masking as the spec says.
		for _, dr := range o.dropRules(want) {
			name, _ := ruleParts(dr)
			mask := ruleMask(dr)
			found := slices.ContainsFunc(rules, func(r *nftables.Rule) bool {
				set, cnt := ruleParts(r)
				return set == name && cnt != nil && hasDrop(r) && bytes.Equal(ruleMask(r), mask)
			})
			if !found {
				missing = append(missing, "rule "+want.Name+" @"+name)
			}
		}
	}
	return missing, nil
}
