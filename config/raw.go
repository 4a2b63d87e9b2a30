package config

// rawConfig is sentry.yaml as written, decoded strictly (an unknown key is
// an error). Every scalar is a field that remembers where it was written and
// whether it was; the loader validates it into Config.
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
	Fleet          *rawFleet      `yaml:"fleet"`
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
	Hits           field[int]    `yaml:"hits"`
	DistinctPorts  field[int]    `yaml:"distinct_ports"`
	DistinctProtos field[int]    `yaml:"distinct_protos"`
	Within         field[string] `yaml:"within"`
}

type rawBans struct {
	IPv4Prefix      field[int]      `yaml:"ipv4_prefix"`
	IPv6Prefix      field[int]      `yaml:"ipv6_prefix"`
	RepeatFactor    field[float64]  `yaml:"repeat_factor"`
	MaxBan          field[string]   `yaml:"max_ban"`
	ForgetAfter     field[string]   `yaml:"forget_after"`
	MaxNewPerMinute field[int]      `yaml:"max_new_per_minute"`
	OverValve       rawOverValve    `yaml:"over_valve"`
	SinglePacket    rawSinglePacket `yaml:"single_packet"`
	Aggregate       rawAggregate    `yaml:"aggregate"`
	ManualBan       field[string]   `yaml:"manual_ban"`
}

type rawOverValve struct {
	Ban          field[string] `yaml:"ban"`
	MaxPerMinute field[int]    `yaml:"max_per_minute"`
}

type rawSinglePacket struct {
	FirstBan        field[string] `yaml:"first_ban"`
	MaxNewPerMinute field[int]    `yaml:"max_new_per_minute"`
}

type rawAggregate struct {
	IPv4Prefix      field[int]    `yaml:"ipv4_prefix"`
	IPv6Prefix      field[int]    `yaml:"ipv6_prefix"`
	DistinctKeys    field[int]    `yaml:"distinct_keys"`
	Within          field[string] `yaml:"within"`
	Ban             field[string] `yaml:"ban"`
	MaxNewPerMinute field[int]    `yaml:"max_new_per_minute"`
}

type rawLimits struct {
	MaxTrackedSources field[int] `yaml:"max_tracked_sources"`
	MaxOffences       field[int] `yaml:"max_offences"`
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
