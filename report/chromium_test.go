package report

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
)

// chromium finds Debian's chromium (make deps installs it).
func chromium(t *testing.T) string {
	t.Helper()
	return testkit.Need(t, "chromium", "chromium-browser")
}

// TestChromium opens the scenario's page in a real headless Chromium, from
// a file, as an operator would: the page loads with no console error, no
// exception and no blocked fetch (the page's policy forbids any), shows the
// top sources, and has a chart in every section. It leaves a full-page
// screenshot in the test's temporary directory.
func TestChromium(t *testing.T) {
	exe := chromium(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, scenarioPage(t), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The machine may have no network: these flags keep Chromium from
	// trying to reach one (and hanging on it).
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.WindowSize(1024, 900),
	)
	defer cancelAlloc()
	tctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()

	start := time.Now()
	var (
		mu       sync.Mutex
		messages []chromedp.ConsoleMessage
		done     = make(chan struct{})
	)
	console := chromedp.Console(tctx)
	go func() {
		defer close(done)
		for m, err := range console {
			if err != nil {
				return
			}
			mu.Lock()
			messages = append(messages, m)
			mu.Unlock()
		}
	}()

	if err := chromedp.Do(tctx, chromedp.Navigate("file://"+page)); err != nil {
		t.Fatalf("load %s: %v", page, err)
	}
	type section struct {
		ID     string `json:"id"`
		Charts int    `json:"charts"`
	}
	sections, err := chromedp.Run(tctx, chromedp.Evaluate[[]section](
		`[...document.querySelectorAll("section")].map(s => ({id: s.id, charts: s.querySelectorAll("svg.chart").length}))`))
	if err != nil {
		t.Fatal(err)
	}
	sources, err := chromedp.Run(tctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#sources article h3 code")].map(c => c.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	// Charts the browser laid out, not only parsed: each has a size.
	drawn, err := chromedp.Run(tctx, chromedp.Evaluate[int](
		`[...document.querySelectorAll("svg.chart")].filter(s => { const r = s.getBoundingClientRect(); return r.width > 300 && r.height > 40 }).length`))
	if err != nil {
		t.Fatal(err)
	}
	charts, err := chromedp.Run(tctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.chart").length`))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(dir, "report.png")
	if err := os.WriteFile(png, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("Chromium loaded, checked and captured the page in %v; screenshot: %s", time.Since(start).Round(time.Millisecond), png)
	// The temporary directory goes with the test: to keep the page and
	// its picture for a look, name a directory in REPORT_KEEP.
	if keep := os.Getenv("REPORT_KEEP"); keep != "" {
		for name, data := range map[string][]byte{"report.png": shot, "report.html": scenarioPage(t)} {
			if err := os.WriteFile(filepath.Join(keep, name), data, 0o644); err != nil {
				t.Error(err)
			}
		}
		t.Logf("kept in %s", keep)
	}

	cancelTab()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for _, m := range messages {
		t.Logf("console: %s", m)
		if m.Type == chromedp.ConsoleError || m.IsException() {
			t.Errorf("console error on the page: %s", m)
		}
	}

	var ids []string
	for _, s := range sections {
		ids = append(ids, s.ID)
		if s.Charts == 0 {
			t.Errorf("section %q shows no chart", s.ID)
		}
	}
	if strings.Join(ids, " ") != strings.Join([]string{"timeline", "sources", "rules", "malformed"}, " ") {
		t.Errorf("sections %v", ids)
	}
	if len(sources) != DefaultSources || sources[0] != sweeper.String()+"/32" || sources[1] != random.String()+"/32" || sources[2] != slowKey.String() {
		t.Errorf("top sources shown: %v", sources)
	}
	if drawn != charts || charts < len(ids) {
		t.Errorf("%d of %d charts laid out with a size", drawn, charts)
	}
	if len(shot) < 10000 || string(shot[1:4]) != "PNG" {
		t.Errorf("screenshot is %d bytes, not a picture", len(shot))
	}
}
