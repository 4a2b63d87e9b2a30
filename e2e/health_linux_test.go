//go:build linux

package e2e

import (
	"regexp"
	"strconv"
	"strings"
)

var reHealth = regexp.MustCompile(`msg=health .*`)

// lastHealth returns the fields of the daemon's last health line.
func lastHealth(d *daemon) map[string]string {
	lines := reHealth.FindAllString(d.log(), -1)
	out := map[string]string{}
	if len(lines) == 0 {
		return out
	}
	for _, f := range strings.Fields(lines[len(lines)-1]) {
		if k, v, ok := strings.Cut(f, "="); ok {
			out[k] = v
		}
	}
	return out
}

// healthEvents is the event count of the last health line.
func healthEvents(d *daemon) uint64 {
	n, _ := strconv.ParseUint(lastHealth(d)["events"], 10, 64)
	return n
}
