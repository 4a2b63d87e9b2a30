package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
)

// stubs are the programs the maintainer scripts call, replaced by ones
// that only write their arguments to $LOG: the test never touches the
// host's systemd. sentry-nflog checks the throwaway root's config with the
// unpacked binary, after checking that it was asked about the right path.
var stubs = map[string]string{
	"deb-systemd-helper": `echo "deb-systemd-helper $*" >> "$LOG"`,
	"deb-systemd-invoke": `echo "deb-systemd-invoke $*" >> "$LOG"`,
	"systemctl":          `echo "systemctl $*" >> "$LOG"`,
	"sentry-nflog": `echo "sentry-nflog $*" >> "$LOG"
[ "$1" = check-config ] && [ "$2" = /etc/sentry-nflog/sentry.yaml ] || exit 64
exec "$ROOT/usr/bin/sentry-nflog" check-config "$ROOT$2"`,
}

// testScripts runs the maintainer scripts as dpkg would, each in a mount
// namespace of its own whose /run is a fresh tmpfs holding
// /run/systemd/system, so that the scripts see a running systemd.
func testScripts(t *testing.T, deb, root string) {
	if os.Getuid() != 0 {
		testkit.Unavailable(t, "needs root for a mount namespace")
	}
	require(t, "unshare", "sh")
	ctrl := t.TempDir()
	run(t, "dpkg-deb", "-e", deb, ctrl)
	bin := t.TempDir()
	for name, body := range stubs {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(root, "etc/sentry-nflog/sentry.yaml")
	good, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	const unit = "sentry-nflog.service"

	for _, tc := range []struct {
		name       string
		script     string
		args       []string
		badConfig  bool
		dpkgRoot   bool
		want, not  []string
		wantStderr string
	}{
		{
			name: "install starts a valid config", script: "postinst", args: []string{"configure"},
			want: []string{"deb-systemd-helper unmask " + unit, "deb-systemd-helper --quiet was-enabled " + unit, "deb-systemd-helper enable " + unit,
				"sentry-nflog check-config /etc/sentry-nflog/sentry.yaml", "systemctl --system daemon-reload", "deb-systemd-invoke start " + unit},
		},
		{
			name: "upgrade restarts a valid config", script: "postinst", args: []string{"configure", "0.0~old-1"},
			want: []string{"sentry-nflog check-config /etc/sentry-nflog/sentry.yaml", "deb-systemd-invoke restart " + unit},
		},
		{
			name: "install does not start an invalid config", script: "postinst", args: []string{"configure"}, badConfig: true,
			want: []string{"deb-systemd-helper enable " + unit, "sentry-nflog check-config /etc/sentry-nflog/sentry.yaml"},
			not:  []string{"deb-systemd-invoke"}, wantStderr: "is not valid",
		},
		{
			name: "upgrade keeps the old daemon on an invalid config", script: "postinst", args: []string{"configure", "0.0~old-1"}, badConfig: true,
			not: []string{"deb-systemd-invoke"}, wantStderr: "is not (re)started",
		},
		{
			name: "another root is left alone", script: "postinst", args: []string{"configure"}, dpkgRoot: true,
			not: []string{"deb-systemd", "systemctl", "sentry-nflog"},
		},
		{
			name: "remove stops", script: "prerm", args: []string{"remove"},
			want: []string{"deb-systemd-invoke stop " + unit},
		},
		{
			name: "upgrade does not stop", script: "prerm", args: []string{"upgrade", "0.0~new-1"},
			not: []string{"deb-systemd-invoke"},
		},
		{
			name: "removed unit is masked", script: "postrm", args: []string{"remove"},
			want: []string{"systemctl --system daemon-reload", "deb-systemd-helper mask " + unit},
		},
		{
			name: "purge removes the state", script: "postrm", args: []string{"purge"}, dpkgRoot: true,
			not: []string{"deb-systemd-helper"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(root, "var/lib/sentry-nflog")
			if err := os.MkdirAll(state, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(state, "offences.json"), []byte("{}"), 0o640); err != nil {
				t.Fatal(err)
			}
			cfg := good
			if tc.badConfig {
				cfg = []byte("engine:\n  rules: [\n")
			}
			if err := os.WriteFile(conf, cfg, 0o640); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.WriteFile(conf, good, 0o640) })

			log := filepath.Join(t.TempDir(), "calls")
			argv := append([]string{"--mount", "--propagation", "private", "sh", "-c",
				`mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec "$@"`,
				"sh", filepath.Join(ctrl, tc.script)}, tc.args...)
			cmd := exec.Command("unshare", argv...)
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH")+":/usr/sbin:/sbin", "LOG="+log, "ROOT="+root, "DPKG_ROOT=")
			if tc.dpkgRoot {
				cmd.Env = append(cmd.Env, "DPKG_ROOT="+root)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s %s: %v\n%s", tc.script, strings.Join(tc.args, " "), err, stderr.String())
			}
			b, _ := os.ReadFile(log)
			calls := string(b)
			for _, w := range tc.want {
				if !strings.Contains(calls, w+"\n") {
					t.Errorf("no call %q; calls:\n%s", w, calls)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(calls, n) {
					t.Errorf("unwanted call %q; calls:\n%s", n, calls)
				}
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.wantStderr)
			}
			_, err := os.Stat(state)
			if purged := os.IsNotExist(err); purged != (tc.name == "purge removes the state") {
				t.Errorf("state directory removed: %v", purged)
			}
		})
	}
}
