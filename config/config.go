package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// Config is a loaded and validated sentry.yaml.
type Config struct {
	// File is where the config came from, for messages.
	File string
	// Inputs says where events come from.
	Inputs Inputs
	// Ignore is the never-ban list: fixed prefixes plus the words that are
	// resolved from the host at run time.
	Ignore Ignore
	// Engine is the rules engine's configuration. Its Ignore holds the
	// fixed prefixes only; the daemon adds the resolved words.
	Engine rules.Config
	// NFTables configures the ban table.
	NFTables NFTables
	// StateDir holds the daemon's state.
	StateDir string
	// Log configures the daemon's own logging.
	Log Log
	// Exec, when set, runs a command for decisions.
	Exec *Exec
	// Advanced, when set, makes the daemon log probes of unused ports
	// itself (Portsentry's atcp/audp without a socket).
	Advanced *Advanced
	// Metrics configures the Prometheus textfile.
	Metrics Metrics
	// FirstStrike configures the kernel's own provisional bans.
	FirstStrike FirstStrike
}

// FirstStrike lets nftables ban a fast scanner by itself at the threshold,
// before userspace has seen the probes, with a provisional timeout that
// the daemon turns into the rule's ban.
type FirstStrike struct {
	Enabled bool
	// Provisional is the kernel ban's timeout; 0 means the longest window
	// of the rules it is derived from.
	Provisional time.Duration
	// SetSize bounds every set the kernel adds to from the packet path.
	SetSize int
}

// Advanced is advanced mode: watched port ranges per protocol.
type Advanced struct {
	TCP, UDP []rules.PortRange
	Exclude  []uint16
	// Refresh is how often the listening ports are read again.
	Refresh time.Duration
	// Prefix is the log prefix of the daemon's own logging rules.
	Prefix string
}

// Metrics configures the Prometheus textfile.
type Metrics struct {
	// Textfile is the .prom file to write; "" writes none.
	Textfile string
	Interval time.Duration
}

// Inputs lists the event sources.
type Inputs struct {
	NFLOG []NFLOGInput
	Files []string
	Kmsg  bool
}

// NFLOGInput is one NFLOG group to read, with its delivery settings.
type NFLOGInput struct {
	Group          uint16
	CopyRange      uint16
	QueueThreshold uint32
	FlushTimeout   time.Duration
	ReadBuffer     int
	// AdaptiveBatching lets the daemon switch the kernel to batches of 32
	// (10 ms flush) during a flood and back to QueueThreshold when calm.
	AdaptiveBatching bool
}

// Ignore is the parsed ignore list.
type Ignore struct {
	Prefixes                  []netip.Prefix
	Self, Gateways, Resolvers bool
}

// NFTables configures the table the daemon owns.
type NFTables struct {
	Table       string
	Hooks       []string
	Priority    int32
	ManageChain bool
}

// Log configures the daemon's logging.
type Log struct {
	Format string // "text" or "json"
	Level  slog.Level
}

// Exec is the alert command.
type Exec struct {
	Command []string
	Timeout time.Duration
	On      []rules.Action
}

// Defaults of keys a file leaves out. They equal the shipped sentry.yaml;
// a test keeps the two in step.
const (
	DefaultNFLOGGroup        = 7
	DefaultCopyRange         = 128
	DefaultQueueThreshold    = 1
	DefaultFlushTimeout      = 0
	DefaultReadBuffer        = 8 << 20
	DefaultMaxTrackedSources = 65536
	DefaultStateDir          = "/var/lib/sentry-nflog"
	defaultIgnore            = "127.0.0.0/8 ::1/128 self gateways resolvers"
)

// DefaultAcceptPrefixes are the log prefixes of packets a firewall front end
// accepted, which are never scan evidence.
var defaultAcceptPrefixes = rules.DefaultAcceptPrefixes()

type rawConfig struct {
	Inputs         rawInputs      `yaml:"inputs"`
	Ignore         *list          `yaml:"ignore"`
	AcceptPrefixes *list          `yaml:"accept_prefixes"`
	Rules          []rawRule      `yaml:"rules"`
	Bans           rawBans        `yaml:"bans"`
	Limits         rawLimits      `yaml:"limits"`
	NFTables       rawNFTables    `yaml:"nftables"`
	StateDir       field[string]  `yaml:"state_dir"`
	Log            rawLog         `yaml:"log"`
	Actions        rawActions     `yaml:"actions"`
	Advanced       *rawAdvanced   `yaml:"advanced"`
	Metrics        rawMetrics     `yaml:"metrics"`
	FirstStrike    rawFirstStrike `yaml:"first_strike"`
}

type rawFirstStrike struct {
	Enabled     field[bool]   `yaml:"enabled"`
	Provisional field[string] `yaml:"provisional"`
	SetSize     field[int]    `yaml:"set_size"`
}

type rawAdvanced struct {
	TCP     list          `yaml:"tcp"`
	UDP     list          `yaml:"udp"`
	Exclude list          `yaml:"exclude"`
	Refresh field[string] `yaml:"refresh"`
	Prefix  field[string] `yaml:"prefix"`
}

type rawMetrics struct {
	Textfile field[string] `yaml:"textfile"`
	Interval field[string] `yaml:"interval"`
}

type rawInputs struct {
	NFLOG *[]rawNFLOG `yaml:"nflog"`
	Files list        `yaml:"files"`
	Kmsg  field[bool] `yaml:"kmsg"`
}

type rawNFLOG struct {
	Group          field[int]    `yaml:"group"`
	CopyRange      field[int]    `yaml:"copy_range"`
	QueueThreshold field[int]    `yaml:"queue_threshold"`
	FlushTimeout   field[string] `yaml:"flush_timeout"`
	ReadBuffer     field[string] `yaml:"read_buffer"`
	Adaptive       field[bool]   `yaml:"adaptive_batching"`
}

type rawRule struct {
	Name      field[string] `yaml:"name"`
	Prefix    list          `yaml:"prefix"`
	Proto     list          `yaml:"proto"`
	Ports     list          `yaml:"ports"`
	Flags     list          `yaml:"flags"`
	Interface list          `yaml:"interface"`
	Threshold rawThreshold  `yaml:"threshold"`
	Ban       field[string] `yaml:"ban"`
}

type rawThreshold struct {
	Hits          field[int]    `yaml:"hits"`
	DistinctPorts field[int]    `yaml:"distinct_ports"`
	Within        field[string] `yaml:"within"`
}

type rawBans struct {
	IPv4Prefix      field[int]     `yaml:"ipv4_prefix"`
	IPv6Prefix      field[int]     `yaml:"ipv6_prefix"`
	RepeatFactor    field[float64] `yaml:"repeat_factor"`
	MaxBan          field[string]  `yaml:"max_ban"`
	ForgetAfter     field[string]  `yaml:"forget_after"`
	MaxNewPerMinute field[int]     `yaml:"max_new_per_minute"`
}

type rawLimits struct {
	MaxTrackedSources field[int] `yaml:"max_tracked_sources"`
}

type rawNFTables struct {
	Table       field[string] `yaml:"table"`
	Hooks       list          `yaml:"hooks"`
	Priority    field[int]    `yaml:"priority"`
	ManageChain field[bool]   `yaml:"manage_chain"`
}

type rawLog struct {
	Format field[string] `yaml:"format"`
	Level  field[string] `yaml:"level"`
}

type rawActions struct {
	Exec *rawExec `yaml:"exec"`
}

type rawExec struct {
	Command list          `yaml:"command"`
	Timeout field[string] `yaml:"timeout"`
	On      list          `yaml:"on"`
}

// Problem is one thing wrong with a config file.
type Problem struct {
	File      string
	Line, Col int
	// Key is the path of the key ("rules[1].threshold.within"), "" for the
	// file as a whole.
	Key string
	Msg string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Col > 0 {
			fmt.Fprintf(&b, ":%d", p.Col)
		}
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in a config file, one per line, in file
// order.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// LoadFile reads and validates the config file at path.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Load(path, data)
}

// Load validates data, naming it file in errors. A returned error of type
// *Error lists every problem.
func Load(file string, data []byte) (*Config, error) {
	l := &loader{file: file}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		l.yamlErr(err)
		return nil, l.err()
	}
	l.index(&root, "")
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		l.add(1, 0, "", "the file must be a YAML mapping of sections (inputs, ignore, rules, ...)")
		return nil, l.err()
	}
	var raw rawConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		l.yamlErr(err)
		return nil, l.err()
	}
	cfg := l.build(&raw)
	if err := l.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

type loader struct {
	file     string
	problems []Problem
	// Positions of keys and sequence items by path, and paths by position,
	// so decoder messages that only give a line can name the key.
	posOf  map[string][2]int
	pathAt map[[2]int]string
	keysAt map[int][]string
}

func (l *loader) add(line, col int, key, format string, args ...any) {
	l.problems = append(l.problems, Problem{File: l.file, Line: line, Col: col, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) at(path string) (int, int) {
	for {
		if p, ok := l.posOf[path]; ok {
			return p[0], p[1]
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return 0, 0
		}
		path = path[:i]
	}
}

func (l *loader) addAt(path, format string, args ...any) {
	line, col := l.at(path)
	l.add(line, col, path, format, args...)
}

func (l *loader) err() error {
	if len(l.problems) == 0 {
		return nil
	}
	sort.SliceStable(l.problems, func(i, j int) bool {
		a, b := l.problems[i], l.problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return &Error{Problems: l.problems}
}

func (l *loader) index(n *yaml.Node, path string) {
	if l.posOf == nil {
		l.posOf = map[string][2]int{}
		l.pathAt = map[[2]int]string{}
		l.keysAt = map[int][]string{}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			l.index(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			l.posOf[p] = [2]int{k.Line, k.Column}
			l.pathAt[[2]int{v.Line, v.Column}] = p
			l.keysAt[k.Line] = append(l.keysAt[k.Line], p)
			l.index(v, p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if _, ok := l.posOf[p]; !ok {
				l.posOf[p] = [2]int{c.Line, c.Column}
			}
			l.pathAt[[2]int{c.Line, c.Column}] = p
			l.index(c, p)
		}
	}
}

var (
	reLineCol  = regexp.MustCompile(`^line (\d+) col (\d+): (.*)$`)
	reUnknown  = regexp.MustCompile(`^line (\d+): field (\S+) not found in type`)
	reLineOnly = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
)

// yamlErr turns the decoder's messages into problems that name the key.
func (l *loader) yamlErr(err error) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := reLineOnly.FindStringSubmatch(err.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			l.add(n, 0, "", "%s", m[2])
			return
		}
		l.add(0, 0, "", "%s", msg)
		return
	}
	for _, s := range te.Errors {
		if m := reLineCol.FindStringSubmatch(s); m != nil {
			line, _ := strconv.Atoi(m[1])
			col, _ := strconv.Atoi(m[2])
			l.add(line, col, l.pathAt[[2]int{line, col}], "%s", m[3])
			continue
		}
		if m := reUnknown.FindStringSubmatch(s); m != nil {
			line, _ := strconv.Atoi(m[1])
			key := m[2]
			for _, p := range l.keysAt[line] {
				if p == key || strings.HasSuffix(p, "."+key) {
					key = p
					break
				}
			}
			col := l.posOf[key][1]
			l.add(line, col, key, "unknown key")
			continue
		}
		if m := reLineOnly.FindStringSubmatch(s); m != nil {
			line, _ := strconv.Atoi(m[1])
			l.add(line, 0, "", "%s", m[2])
			continue
		}
		l.add(0, 0, "", "%s", s)
	}
}

func (l *loader) build(raw *rawConfig) *Config {
	cfg := &Config{File: l.file}
	l.inputs(raw, cfg)
	l.ignore(raw, cfg)
	l.rules(raw, cfg)
	l.bans(raw, cfg)
	l.nftables(raw, cfg)
	cfg.StateDir = DefaultStateDir
	if raw.StateDir.Set {
		if !strings.HasPrefix(raw.StateDir.V, "/") {
			l.addAt("state_dir", "must be an absolute path, got %q", raw.StateDir.V)
		}
		cfg.StateDir = raw.StateDir.V
	}
	l.log(raw, cfg)
	l.exec(raw, cfg)
	l.advanced(raw, cfg)
	l.metrics(raw, cfg)
	l.firstStrike(raw, cfg)
	return cfg
}

func (l *loader) firstStrike(raw *rawConfig, cfg *Config) {
	r := raw.FirstStrike
	fs := FirstStrike{Enabled: true, SetSize: int(actions.DefaultFirstStrikeSetSize)}
	if r.Enabled.Set {
		fs.Enabled = r.Enabled.V
	}
	if r.Provisional.Set {
		if d, ok := l.duration("first_strike.provisional", r.Provisional.V); ok {
			if d != 0 && (d < 10*time.Second || d > 24*time.Hour) {
				l.addAt("first_strike.provisional", "%s out of range 10s-24h (0: the longest window of the rules)", r.Provisional.V)
			}
			fs.Provisional = d
		}
	}
	if r.SetSize.Set {
		if r.SetSize.V < 1024 || r.SetSize.V > 1<<24 {
			l.add(r.SetSize.Line, r.SetSize.Col, "first_strike.set_size", "%d out of range 1024-16777216", r.SetSize.V)
		}
		fs.SetSize = r.SetSize.V
	}
	cfg.FirstStrike = fs
}

// Defaults of advanced mode and metrics.
const (
	DefaultAdvancedRefresh = 5 * time.Second
	DefaultMetricsInterval = 15 * time.Second
)

func (l *loader) advanced(raw *rawConfig, cfg *Config) {
	r := raw.Advanced
	if r == nil {
		return
	}
	a := &Advanced{Refresh: DefaultAdvancedRefresh, Prefix: actions.DefaultAdvancedPrefix}
	ranges := func(key string, items list) []rules.PortRange {
		var out []rules.PortRange
		for i, it := range items.Items {
			path := fmt.Sprintf("advanced.%s[%d]", key, i)
			if len(items.Items) == 1 {
				path = "advanced." + key
			}
			rs, err := parsePorts(it.V)
			if err != nil {
				l.add(it.Line, it.Col, path, "%v", err)
			}
			out = append(out, rs...)
		}
		return out
	}
	a.TCP = ranges("tcp", r.TCP)
	a.UDP = ranges("udp", r.UDP)
	if len(a.TCP) == 0 && len(a.UDP) == 0 {
		l.addAt("advanced", "watch at least one of tcp or udp (such as tcp: \"1-1023\")")
	}
	for i, e := range r.Exclude.Items {
		rs, err := parsePorts(e.V)
		if err != nil {
			l.add(e.Line, e.Col, fmt.Sprintf("advanced.exclude[%d]", i), "%v", err)
		}
		for _, r := range rs {
			for p := int(r.Lo); p <= int(r.Hi); p++ {
				a.Exclude = append(a.Exclude, uint16(p))
			}
		}
	}
	if r.Refresh.Set {
		if d, ok := l.duration("advanced.refresh", r.Refresh.V); ok {
			if d < time.Second || d > 5*time.Minute {
				l.addAt("advanced.refresh", "%s out of range 1s-5m", r.Refresh.V)
			}
			a.Refresh = d
		}
	}
	if r.Prefix.Set {
		if r.Prefix.V == "" || len(r.Prefix.V) > 63 {
			l.addAt("advanced.prefix", "a log prefix is 1-63 characters")
		}
		a.Prefix = r.Prefix.V
	}
	if len(cfg.Inputs.NFLOG) == 0 {
		l.addAt("advanced", "advanced mode logs to the first NFLOG group: inputs.nflog must list one")
	}
	cfg.Advanced = a
}

func (l *loader) metrics(raw *rawConfig, cfg *Config) {
	cfg.Metrics.Interval = DefaultMetricsInterval
	if t := raw.Metrics.Textfile; t.Set && t.V != "" {
		if !strings.HasPrefix(t.V, "/") || !strings.HasSuffix(t.V, ".prom") {
			l.add(t.Line, t.Col, "metrics.textfile", "%q: want an absolute path ending in .prom (node_exporter's textfile collector reads only those)", t.V)
		}
		cfg.Metrics.Textfile = t.V
	}
	if i := raw.Metrics.Interval; i.Set {
		if d, ok := l.duration("metrics.interval", i.V); ok {
			if d < time.Second || d > time.Hour {
				l.addAt("metrics.interval", "%s out of range 1s-1h", i.V)
			}
			cfg.Metrics.Interval = d
		}
	}
}

func (l *loader) inputs(raw *rawConfig, cfg *Config) {
	in := &cfg.Inputs
	if raw.Inputs.NFLOG == nil {
		in.NFLOG = []NFLOGInput{defaultNFLOG(DefaultNFLOGGroup)}
	}
	groups := map[int]bool{}
	for i, r := range derefNFLOG(raw.Inputs.NFLOG) {
		path := fmt.Sprintf("inputs.nflog[%d]", i)
		if !r.Group.Set {
			l.addAt(path, "group is required")
			continue
		}
		if r.Group.V < 0 || r.Group.V > math.MaxUint16 {
			l.addAt(path+".group", "NFLOG group %d out of range 0-65535", r.Group.V)
			continue
		}
		if groups[r.Group.V] {
			l.addAt(path+".group", "group %d listed twice", r.Group.V)
		}
		groups[r.Group.V] = true
		n := defaultNFLOG(uint16(r.Group.V))
		if r.CopyRange.Set {
			if r.CopyRange.V < 40 || r.CopyRange.V > 65535 {
				l.addAt(path+".copy_range", "%d out of range 40-65535 (bytes of each packet copied; 128 holds the IP and transport headers)", r.CopyRange.V)
			}
			n.CopyRange = uint16(r.CopyRange.V)
		}
		if r.QueueThreshold.Set {
			if r.QueueThreshold.V < 1 || r.QueueThreshold.V > 1000 {
				l.addAt(path+".queue_threshold", "%d out of range 1-1000", r.QueueThreshold.V)
			}
			n.QueueThreshold = uint32(r.QueueThreshold.V)
		}
		if r.FlushTimeout.Set {
			d, ok := l.duration(path+".flush_timeout", r.FlushTimeout.V)
			if ok && (d < 0 || d > 10*time.Second || d%(10*time.Millisecond) != 0) {
				l.addAt(path+".flush_timeout", "%s: want a multiple of 10ms up to 10s (the kernel counts it in 1/100 s)", r.FlushTimeout.V)
			}
			n.FlushTimeout = d
		}
		if r.ReadBuffer.Set {
			b, err := parseSize(r.ReadBuffer.V)
			if err != nil || b < 64<<10 || b > 1<<30 {
				l.addAt(path+".read_buffer", "%q: want a size between 64KiB and 1GiB, such as 8MiB", r.ReadBuffer.V)
			}
			n.ReadBuffer = b
		}
		if r.Adaptive.Set {
			n.AdaptiveBatching = r.Adaptive.V
		}
		in.NFLOG = append(in.NFLOG, n)
	}
	for i, f := range raw.Inputs.Files.Items {
		if !strings.HasPrefix(f.V, "/") {
			l.add(f.Line, f.Col, fmt.Sprintf("inputs.files[%d]", i), "must be an absolute path, got %q", f.V)
		}
		in.Files = append(in.Files, f.V)
	}
	in.Kmsg = raw.Inputs.Kmsg.V
}

func derefNFLOG(p *[]rawNFLOG) []rawNFLOG {
	if p == nil {
		return nil
	}
	return *p
}

func defaultNFLOG(group uint16) NFLOGInput {
	return NFLOGInput{
		Group: group, CopyRange: DefaultCopyRange, QueueThreshold: DefaultQueueThreshold,
		FlushTimeout: DefaultFlushTimeout, ReadBuffer: DefaultReadBuffer, AdaptiveBatching: true,
	}
}

func (l *loader) ignore(raw *rawConfig, cfg *Config) {
	items := raw.Ignore
	if items == nil {
		items = &list{}
		for _, w := range strings.Fields(defaultIgnore) {
			items.Items = append(items.Items, field[string]{V: w})
		}
	}
	for i, it := range items.Items {
		path := fmt.Sprintf("ignore[%d]", i)
		switch it.V {
		case "self":
			cfg.Ignore.Self = true
			continue
		case "gateways":
			cfg.Ignore.Gateways = true
			continue
		case "resolvers":
			cfg.Ignore.Resolvers = true
			continue
		}
		p, err := parsePrefix(it.V)
		if err != nil {
			l.add(it.Line, it.Col, path, "%v (want a CIDR such as 192.0.2.0/24, an address, or one of self, gateways, resolvers)", err)
			continue
		}
		cfg.Ignore.Prefixes = append(cfg.Ignore.Prefixes, p)
	}
	cfg.Engine.Ignore = cfg.Ignore.Prefixes
	cfg.Engine.AcceptPrefixes = defaultAcceptPrefixes
	if raw.AcceptPrefixes != nil {
		cfg.Engine.AcceptPrefixes = nil
		for _, it := range raw.AcceptPrefixes.Items {
			cfg.Engine.AcceptPrefixes = append(cfg.Engine.AcceptPrefixes, it.V)
		}
	}
}

// parsePrefix takes a CIDR or a single address; an address with host bits
// set under its mask is refused, since it usually hides a typo.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has bits set beyond /%d (did you mean %s?)", s, p.Bits(), p.Masked())
	}
	return p, nil
}

var reName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func (l *loader) rules(raw *rawConfig, cfg *Config) {
	if len(raw.Rules) == 0 {
		l.addAt("rules", "at least one rule is required")
		return
	}
	if len(raw.Rules) > rules.MaxRules {
		l.addAt("rules", "%d rules, at most %d", len(raw.Rules), rules.MaxRules)
		return
	}
	names := map[string]bool{}
	for i := range raw.Rules {
		rr := &raw.Rules[i]
		path := fmt.Sprintf("rules[%d]", i)
		var r rules.Rule
		switch {
		case !rr.Name.Set || rr.Name.V == "":
			l.addAt(path, "name is required")
		case !reName.MatchString(rr.Name.V):
			l.add(rr.Name.Line, rr.Name.Col, path+".name", "%q: use letters, digits, '-', '_' and '.'", rr.Name.V)
		case names[rr.Name.V]:
			l.add(rr.Name.Line, rr.Name.Col, path+".name", "rule name %q used twice", rr.Name.V)
		}
		names[rr.Name.V] = true
		r.Name = rr.Name.V
		for j, p := range rr.Prefix.Items {
			if p.V == "" || len(p.V) > 127 {
				l.add(p.Line, p.Col, fmt.Sprintf("%s.prefix[%d]", path, j), "a log prefix is 1-127 characters")
				continue
			}
			r.Prefixes = append(r.Prefixes, rules.Pattern(strings.TrimRight(strings.TrimSpace(p.V), ":")))
		}
		tcpOnly := true
		for j, p := range rr.Proto.Items {
			n, ok := parseProto(p.V)
			if !ok {
				l.add(p.Line, p.Col, fmt.Sprintf("%s.proto[%d]", path, j), "unknown protocol %q (want tcp, udp, icmp, icmpv6, sctp, udplite or a number 0-255)", p.V)
				continue
			}
			tcpOnly = tcpOnly && n == parsers.ProtoTCP
			r.Protos = append(r.Protos, n)
		}
		if len(rr.Ports.Items) > 0 {
			r.Ports = new(rules.PortSet)
			for j, p := range rr.Ports.Items {
				if err := addPorts(r.Ports, p.V); err != nil {
					l.add(p.Line, p.Col, fmt.Sprintf("%s.ports[%d]", path, j), "%v", err)
				}
			}
		}
		for j, f := range rr.Flags.Items {
			c, err := rules.ParseFlagClass(f.V)
			if err != nil {
				l.add(f.Line, f.Col, fmt.Sprintf("%s.flags[%d]", path, j), "%v", err)
				continue
			}
			r.Flags |= c
		}
		if r.Flags != 0 && (len(r.Protos) == 0 || !tcpOnly) {
			if len(r.Protos) == 0 {
				r.Protos = []uint8{parsers.ProtoTCP}
			} else {
				l.add(rr.Flags.Line, rr.Flags.Col, path+".flags", "TCP flag classes need proto: tcp")
			}
		}
		for j, f := range rr.Interface.Items {
			name := strings.TrimSuffix(f.V, "*")
			if f.V == "" || len(name) > 15 || strings.ContainsAny(name, " /*") {
				l.add(f.Line, f.Col, fmt.Sprintf("%s.interface[%d]", path, j), "%q is not an interface name (up to 15 characters, optional trailing '*')", f.V)
				continue
			}
			r.Interfaces = append(r.Interfaces, rules.Pattern(f.V))
		}
		th := rr.Threshold
		tpath := path + ".threshold"
		if th.Hits.Set {
			if th.Hits.V < 1 || th.Hits.V > rules.MaxHits {
				l.add(th.Hits.Line, th.Hits.Col, tpath+".hits", "%d out of range 1-%d", th.Hits.V, rules.MaxHits)
			}
			r.Hits = th.Hits.V
		}
		if th.DistinctPorts.Set {
			if th.DistinctPorts.V < 1 || th.DistinctPorts.V > rules.MaxDistinctPorts {
				l.add(th.DistinctPorts.Line, th.DistinctPorts.Col, tpath+".distinct_ports", "%d out of range 1-%d", th.DistinctPorts.V, rules.MaxDistinctPorts)
			}
			r.DistinctPorts = th.DistinctPorts.V
		}
		if !th.Hits.Set && !th.DistinctPorts.Set {
			l.addAt(tpath, "needs hits or distinct_ports (hits: 1 bans on the first packet)")
		}
		if th.Within.Set {
			if d, ok := l.duration(tpath+".within", th.Within.V); ok {
				if d <= 0 {
					l.addAt(tpath+".within", "must be positive")
				}
				r.Within = d
			}
		} else if r.Hits > 1 || r.DistinctPorts > 1 {
			l.addAt(tpath, "needs within, the sliding window (such as 60s)")
		}
		if !rr.Ban.Set {
			l.addAt(path, "ban (a duration such as 1h) is required")
		} else if d, ok := l.duration(path+".ban", rr.Ban.V); ok {
			if d < time.Second {
				l.addAt(path+".ban", "%s: a ban is at least 1s", rr.Ban.V)
			}
			r.Ban = d
		}
		cfg.Engine.Rules = append(cfg.Engine.Rules, r)
	}
}

func parseProto(s string) (uint8, bool) {
	switch strings.ToLower(s) {
	case "tcp":
		return parsers.ProtoTCP, true
	case "udp":
		return parsers.ProtoUDP, true
	case "icmp":
		return parsers.ProtoICMP, true
	case "icmpv6", "ipv6-icmp":
		return parsers.ProtoICMPv6, true
	case "sctp":
		return parsers.ProtoSCTP, true
	case "udplite":
		return parsers.ProtoUDPLite, true
	}
	n, err := strconv.ParseUint(s, 10, 8)
	return uint8(n), err == nil
}

// parsePorts reads "22", "1-1023" or a comma list of those.
func parsePorts(s string) ([]rules.PortRange, error) {
	var out []rules.PortRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
		}
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%q is not a port (0-65535) or range such as 1-1023", part)
		}
		if a > b {
			return nil, fmt.Errorf("range %q runs backwards", part)
		}
		out = append(out, rules.PortRange{Lo: uint16(a), Hi: uint16(b)})
	}
	return out, nil
}

// addPorts adds the ports of s (as parsePorts reads them) to set.
func addPorts(set *rules.PortSet, s string) error {
	rs, err := parsePorts(s)
	for _, r := range rs {
		set.Add(r.Lo, r.Hi)
	}
	return err
}

func (l *loader) bans(raw *rawConfig, cfg *Config) {
	b := rules.DefaultBanPolicy()
	rb := raw.Bans
	if rb.IPv4Prefix.Set {
		if rb.IPv4Prefix.V < 8 || rb.IPv4Prefix.V > 32 {
			l.add(rb.IPv4Prefix.Line, rb.IPv4Prefix.Col, "bans.ipv4_prefix", "%d out of range 8-32", rb.IPv4Prefix.V)
		}
		b.IPv4Prefix = rb.IPv4Prefix.V
	}
	if rb.IPv6Prefix.Set {
		if rb.IPv6Prefix.V < 32 || rb.IPv6Prefix.V > 128 {
			l.add(rb.IPv6Prefix.Line, rb.IPv6Prefix.Col, "bans.ipv6_prefix", "%d out of range 32-128", rb.IPv6Prefix.V)
		}
		b.IPv6Prefix = rb.IPv6Prefix.V
	}
	if rb.RepeatFactor.Set {
		if rb.RepeatFactor.V < 1 || rb.RepeatFactor.V > 100 {
			l.add(rb.RepeatFactor.Line, rb.RepeatFactor.Col, "bans.repeat_factor", "%g out of range 1-100 (1 turns escalation off)", rb.RepeatFactor.V)
		}
		b.RepeatFactor = rb.RepeatFactor.V
	}
	if rb.MaxBan.Set {
		if d, ok := l.duration("bans.max_ban", rb.MaxBan.V); ok {
			b.MaxBan = d
		}
	}
	if rb.ForgetAfter.Set {
		if d, ok := l.duration("bans.forget_after", rb.ForgetAfter.V); ok {
			b.ForgetAfter = d
		}
	}
	if rb.MaxNewPerMinute.Set {
		if rb.MaxNewPerMinute.V < 0 || rb.MaxNewPerMinute.V > 100000 {
			l.add(rb.MaxNewPerMinute.Line, rb.MaxNewPerMinute.Col, "bans.max_new_per_minute", "%d out of range 0-100000 (0 turns the valve off)", rb.MaxNewPerMinute.V)
		}
		b.MaxNewPerMinute = rb.MaxNewPerMinute.V
	}
	for i, r := range cfg.Engine.Rules {
		if r.Ban > b.MaxBan && b.MaxBan > 0 {
			l.addAt(fmt.Sprintf("rules[%d].ban", i), "%s is longer than bans.max_ban %s", r.Ban, b.MaxBan)
		}
	}
	cfg.Engine.Bans = b
	cfg.Engine.MaxTrackedSources = DefaultMaxTrackedSources
	if m := raw.Limits.MaxTrackedSources; m.Set {
		if m.V < 16 || m.V > 1<<24 {
			l.add(m.Line, m.Col, "limits.max_tracked_sources", "%d out of range 16-16777216", m.V)
		}
		cfg.Engine.MaxTrackedSources = m.V
	}
}

var reTable = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,31}$`)

func (l *loader) nftables(raw *rawConfig, cfg *Config) {
	n := NFTables{Table: actions.DefaultTable, Hooks: []string{actions.HookInput}, Priority: actions.DefaultPriority, ManageChain: true}
	r := raw.NFTables
	if r.Table.Set {
		if !reTable.MatchString(r.Table.V) {
			l.add(r.Table.Line, r.Table.Col, "nftables.table", "%q is not a valid table name", r.Table.V)
		}
		n.Table = r.Table.V
	}
	if r.Hooks.Set {
		n.Hooks = nil
		seen := map[string]bool{}
		for i, h := range r.Hooks.Items {
			if err := actions.CheckHook(h.V); err != nil {
				l.add(h.Line, h.Col, fmt.Sprintf("nftables.hooks[%d]", i), "%v", err)
				continue
			}
			if !seen[h.V] {
				n.Hooks = append(n.Hooks, h.V)
			}
			seen[h.V] = true
		}
		if len(n.Hooks) == 0 && len(r.Hooks.Items) == 0 {
			l.add(r.Hooks.Line, r.Hooks.Col, "nftables.hooks", "at least one hook (input) is required")
		}
	}
	if r.Priority.Set {
		if r.Priority.V < -400 || r.Priority.V > 400 {
			l.add(r.Priority.Line, r.Priority.Col, "nftables.priority", "%d out of range -400..400", r.Priority.V)
		}
		n.Priority = int32(r.Priority.V)
	}
	if r.ManageChain.Set {
		n.ManageChain = r.ManageChain.V
	}
	cfg.NFTables = n
}

func (l *loader) log(raw *rawConfig, cfg *Config) {
	cfg.Log = Log{Format: "text", Level: slog.LevelInfo}
	if f := raw.Log.Format; f.Set {
		if f.V != "text" && f.V != "json" {
			l.add(f.Line, f.Col, "log.format", "%q: want text or json", f.V)
		}
		cfg.Log.Format = f.V
	}
	if lv := raw.Log.Level; lv.Set {
		if err := cfg.Log.Level.UnmarshalText([]byte(lv.V)); err != nil {
			l.add(lv.Line, lv.Col, "log.level", "%q: want debug, info, warn or error", lv.V)
		}
	}
}

func (l *loader) exec(raw *rawConfig, cfg *Config) {
	r := raw.Actions.Exec
	if r == nil {
		return
	}
	e := &Exec{Timeout: actions.DefaultExecTimeout, On: []rules.Action{rules.Ban}}
	for _, c := range r.Command.Items {
		e.Command = append(e.Command, c.V)
	}
	if len(e.Command) == 0 || !strings.HasPrefix(e.Command[0], "/") {
		l.addAt("actions.exec.command", "want a list whose first item is the absolute path of the program, such as [/usr/local/bin/alert, \"{source}\", \"{rule}\"]")
	}
	if r.Timeout.Set {
		if d, ok := l.duration("actions.exec.timeout", r.Timeout.V); ok {
			if d <= 0 || d > 10*time.Minute {
				l.addAt("actions.exec.timeout", "%s out of range (0, 10m]", r.Timeout.V)
			}
			e.Timeout = d
		}
	}
	if r.On.Set {
		e.On = nil
		for i, o := range r.On.Items {
			var a rules.Action
			switch o.V {
			case "ban":
				a = rules.Ban
			case "ignored":
				a = rules.Ignored
			case "rate-limited":
				a = rules.RateLimited
			default:
				l.add(o.Line, o.Col, fmt.Sprintf("actions.exec.on[%d]", i), "%q: want ban, ignored or rate-limited", o.V)
				continue
			}
			e.On = append(e.On, a)
		}
	}
	cfg.Exec = e
}

// duration parses a Go duration, also taking days ("7d", "1d12h").
func (l *loader) duration(path, s string) (time.Duration, bool) {
	d, err := ParseDuration(s)
	if err != nil {
		l.addAt(path, "%v", err)
		return 0, false
	}
	return d, true
}

// ParseDuration parses a duration such as "90s", "1h30m" or "7d".
func ParseDuration(s string) (time.Duration, error) {
	rest := s
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (want a number and a unit: 90s, 15m, 1h, 7d)", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		rest = s[i+1:]
		if rest == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want a number and a unit: 90s, 15m, 1h, 7d)", s)
	}
	return days + d, nil
}

// parseSize parses a byte size: a number with an optional KiB, MiB or GiB.
func parseSize(s string) (int, error) {
	mult := 1
	for _, u := range []struct {
		suffix string
		m      int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > math.MaxInt32/mult {
		return 0, fmt.Errorf("invalid size")
	}
	return n * mult, nil
}
