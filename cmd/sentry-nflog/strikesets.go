package main

import (
	"fmt"
	"io"

	"github.com/sentry-nflog/sentry-nflog/actions"
)

// strikeSetJSON is one first-strike counting set in `list --json`, listed
// when it is full or has been.
type strikeSetJSON struct {
	Set       string `json:"set"`
	Elements  int    `json:"elements"`
	Size      int    `json:"size"`
	Full      bool   `json:"full"`
	FullDrops uint64 `json:"full_drops"`
}

// strikeSetsOf reads first strike's counting sets and keeps those full now
// or full before (a set the daemon emptied shows by its drops). An error
// or a table without first strike is none.
func strikeSetsOf(sets func() ([]actions.StrikeSet, error)) []strikeSetJSON {
	all, err := sets()
	if err != nil {
		return nil
	}
	var out []strikeSetJSON
	for _, s := range all {
		if s.Full() || s.FullDrops > 0 {
			out = append(out, strikeSetJSON{Set: s.Name, Elements: s.Elements, Size: s.Size, Full: s.Full(), FullDrops: s.FullDrops})
		}
	}
	return out
}

// writeStrikeSets says, for `list`, which first-strike sets are or were
// full.
func writeStrikeSets(w io.Writer, sets []strikeSetJSON) {
	for _, s := range sets {
		state := "was full"
		if s.Full {
			state = "is FULL"
		}
		fmt.Fprintf(w, "first strike: set %s %s (%d of %d elements); %d probes it could not count were dropped unanswered\n",
			s.Set, state, s.Elements, s.Size, s.FullDrops)
	}
}
