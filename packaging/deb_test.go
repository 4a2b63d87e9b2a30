package packaging

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
)

// require needs every one of tools (testkit.Need).
func require(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		testkit.Need(t, tool)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

const version = "0.0~test"

// Paths the package installs, with their modes as dpkg-deb lists them.
var wantFiles = map[string]string{
	"/usr/bin/sentry-nflog":                               "-rwxr-xr-x",
	"/etc/sentry-nflog/sentry.yaml":                       "-rw-r-----",
	"/lib/systemd/system/sentry-nflog.service":            "-rw-r--r--",
	"/usr/share/doc/sentry-nflog/examples/fleet.conf":     "-rw-r--r--",
	"/usr/share/man/man1/sentry-nflog.1.gz":               "-rw-r--r--",
	"/usr/share/bash-completion/completions/sentry-nflog": "-rw-r--r--",
	"/usr/share/zsh/vendor-completions/_sentry-nflog":     "-rw-r--r--",
	"/usr/share/doc/sentry-nflog/copyright":               "-rw-r--r--",
	"/usr/share/doc/sentry-nflog/changelog.Debian.gz":     "-rw-r--r--",
	"/usr/share/lintian/overrides/sentry-nflog":           "-rw-r--r--",
}

// TestDeb builds the package once and checks it from every side.
func TestDeb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package")
	}
	require(t, "dpkg-deb", "dpkg", "lintian", "git", "bash", "gzip")
	out := t.TempDir()
	build := exec.Command("bash", "deb.sh", out)
	build.Env = append(os.Environ(), "DEB_VERSION="+version, "GO="+filepath.Join(runtime.GOROOT(), "bin", "go"))
	start := time.Now()
	b, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("deb.sh: %v\n%s", err, b)
	}
	arch := strings.TrimSpace(run(t, "dpkg", "--print-architecture"))
	deb := filepath.Join(out, "sentry-nflog_"+version+"-1_"+arch+".deb")
	if got := strings.TrimSpace(string(b)); got != deb {
		t.Fatalf("deb.sh made %q, want %q", got, deb)
	}
	t.Logf("built %s in %v", filepath.Base(deb), time.Since(start).Round(time.Millisecond))

	t.Run("control", func(t *testing.T) {
		fields := run(t, "dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Section", "Maintainer", "Depends")
		for _, want := range []string{"Package: sentry-nflog\n", "Version: " + version + "-1\n", "Architecture: " + arch + "\n", "Section: net\n", "Maintainer: "} {
			if !strings.Contains(fields, want) {
				t.Errorf("control lacks %q:\n%s", want, fields)
			}
		}
		ctrl := t.TempDir()
		run(t, "dpkg-deb", "-e", deb, ctrl)
		if c, _ := os.ReadFile(filepath.Join(ctrl, "conffiles")); string(c) != "/etc/sentry-nflog/sentry.yaml\n" {
			t.Errorf("conffiles: %q, want the config alone", c)
		}
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			fi, err := os.Stat(filepath.Join(ctrl, s))
			if err != nil || fi.Mode().Perm()&0o111 == 0 {
				t.Errorf("%s: missing or not executable (%v)", s, err)
			}
		}
	})

	t.Run("contents", func(t *testing.T) {
		got := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "--contents", deb)), "\n") {
			f := strings.Fields(l)
			if len(f) < 6 || strings.HasPrefix(f[0], "d") {
				continue
			}
			got[strings.TrimPrefix(f[5], ".")] = f[0]
			if f[1] != "root/root" {
				t.Errorf("%s owned by %s", f[5], f[1])
			}
		}
		for path, mode := range wantFiles {
			if got[path] != mode {
				t.Errorf("%s: mode %q, want %q", path, got[path], mode)
			}
		}
		for path := range got {
			if _, ok := wantFiles[path]; !ok {
				t.Errorf("unexpected file %s", path)
			}
		}
	})

	t.Run("lintian", func(t *testing.T) {
		start := time.Now()
		cmd := exec.Command("lintian", "--fail-on", "error,warning", "--display-level", ">=warning", deb)
		b, err := cmd.CombinedOutput()
		t.Logf("lintian took %v", time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Errorf("lintian: %v\n%s", err, b)
		}
	})

	// dpkg installs the package into a throwaway root, registering it and
	// its conffile as on a real system. Its maintainer scripts run outside
	// a chroot (the root has no shell) with DPKG_ROOT set, and so, as
	// Debian's conventions ask, touch nothing outside that root.
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "dpkg", "--root="+root, "--force-not-root", "--force-script-chrootless", "--install", deb)

	t.Run("unpacked", func(t *testing.T) {
		status, err := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Package: sentry-nflog\n", "Status: install ok installed\n", "Conffiles:\n /etc/sentry-nflog/sentry.yaml "} {
			if !strings.Contains(string(status), want) {
				t.Errorf("dpkg status lacks %q:\n%s", want, status)
			}
		}
		for path, mode := range wantFiles {
			fi, err := os.Stat(filepath.Join(root, path))
			if err != nil {
				t.Errorf("%s not installed: %v", path, err)
			} else if fi.Mode().String() != mode {
				t.Errorf("%s installed as %s, want %s", path, fi.Mode(), mode)
			}
		}
		checkUnit(t, root)
		bin := filepath.Join(root, "usr/bin/sentry-nflog")
		if v := run(t, bin, "version"); v != "sentry-nflog "+version+"\n" {
			t.Errorf("installed binary says %q", v)
		}
		run(t, bin, "check-config", filepath.Join(root, "etc/sentry-nflog/sentry.yaml"))
		man := gunzip(t, filepath.Join(root, "usr/share/man/man1/sentry-nflog.1.gz"))
		if !strings.Contains(man, "\n.TH SENTRY-NFLOG 1 ") || !strings.Contains(man, `"sentry\-nflog `+version+`"`) {
			t.Errorf("man page without its header and version:\n%.300s", man)
		}
		if cl := gunzip(t, filepath.Join(root, "usr/share/doc/sentry-nflog/changelog.Debian.gz")); !strings.HasPrefix(cl, "sentry-nflog ("+version+"-1) ") {
			t.Errorf("changelog starts %.80q", cl)
		}
	})

	t.Run("scripts", func(t *testing.T) { testScripts(t, deb, root) })
}

// checkUnit reads the installed unit: every program it runs is installed
// and executable, and the config it names is the package's conffile.
func checkUnit(t *testing.T, root string) {
	t.Helper()
	unit, err := os.ReadFile(filepath.Join(root, "lib/systemd/system/sentry-nflog.service"))
	if err != nil {
		t.Fatal(err)
	}
	var execs int
	for _, l := range strings.Split(string(unit), "\n") {
		key, val, ok := strings.Cut(l, "=")
		if !ok || !strings.HasPrefix(key, "Exec") {
			continue
		}
		args := strings.Fields(val)
		if key == "ExecReload" {
			continue // /bin/kill, from the system
		}
		execs++
		fi, err := os.Stat(filepath.Join(root, args[0]))
		if err != nil || fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s runs %s, not installed as a program (%v)", key, args[0], err)
		}
		if args[0] != "/usr/bin/sentry-nflog" {
			t.Errorf("%s runs %s, want /usr/bin/sentry-nflog", key, args[0])
		}
		for i, a := range args {
			if strings.HasPrefix(a, "/etc/") {
				if a != "/etc/sentry-nflog/sentry.yaml" {
					t.Errorf("%s names config %s", key, a)
				}
				if _, err := os.Stat(filepath.Join(root, a)); err != nil {
					t.Errorf("%s: config %s (argument %d) not installed", key, a, i)
				}
			}
		}
	}
	if execs != 2 {
		t.Errorf("%d ExecStart/ExecStartPre lines, want 2:\n%s", execs, unit)
	}
	if strings.Contains(string(unit), "/usr/local") {
		t.Error("the packaged unit still points into /usr/local")
	}
	if !strings.Contains(string(unit), "\nDocumentation=man:sentry-nflog(1) ") {
		t.Error("the packaged unit does not point to the packaged man page")
	}
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
