package main

import (
	"strings"
	"testing"
)

func TestFleetCLI(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "check-config", "../../testdata/config/valid/fleet.yaml")
	if code != exitOK || !strings.Contains(out, "fleet as web-1_a (2 servers, stream sentry_bans, publish true, apply true)") {
		t.Errorf("check-config of a fleet config: %d %q %q", code, out, errOut)
	}
	code, _, errOut = runCLI(t, nil, "check-config", "../../testdata/config/invalid/fleet.yaml")
	if code != exitUsage || !strings.Contains(errOut, `fleet.name: "web.1" is not a valid origin name`) {
		t.Errorf("check-config of a bad fleet section: %d %q", code, errOut)
	}
	// list --fleet without a fleet section says so, before any connection.
	code, _, errOut = runCLI(t, nil, "list", "--fleet")
	if code != exitUsage || !strings.Contains(errOut, "has no fleet section") {
		t.Errorf("list --fleet without a fleet section: %d %q", code, errOut)
	}
}
