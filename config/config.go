package config

import (
	"log/slog"
	"net/netip"
	"time"

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
	// MaxOffences bounds the offence history the daemon keeps and saves
	// (limits.max_offences): past it, the oldest offences that are not
	// active bans are forgotten.
	MaxOffences int
	// Fleet, when set, shares bans with the other hosts (fleet.go).
	Fleet *Fleet
	// ManualBan is how long `sentry-nflog block` bans without --for
	// (bans.manual_ban), at most bans.max_ban.
	ManualBan time.Duration
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
	DefaultMaxOffences       = 262144
	DefaultStateDir          = "/var/lib/sentry-nflog"
	DefaultManualBan         = 24 * time.Hour
	defaultIgnore            = "127.0.0.0/8 ::1/128 self gateways resolvers"
)

// Defaults of advanced mode and metrics.
const (
	DefaultAdvancedRefresh = 5 * time.Second
	DefaultMetricsInterval = 15 * time.Second
)
