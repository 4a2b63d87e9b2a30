package main

import (
	"context"
	"fmt"

	"github.com/sentry-nflog/sentry-nflog/firewall"
)

func cmdFirewall(_ context.Context, e *env, args []string) int {
	fs := flags(e, "firewall", "[--config FILE] [--iptables] [--rules-only]", `Print the rules that log probes of unused ports to sentry-nflog's NFLOG
group, for nftables (default) or iptables/ip6tables.

Add them to your input chain AFTER the rules that accept established
traffic and the services this host runs (ssh, web, ...): every packet that
reaches them is taken as a probe of a port nothing here answers. They only
log; your chain's policy or your own drop/reject rules still decide the
packet's fate. sentry-nflog's own table drops banned sources before all of
this (priority -10).

Examples:
  sentry-nflog firewall
  sentry-nflog firewall --iptables --config /etc/sentry-nflog/sentry.yaml`)
	cfgPath := fs.String("config", "", "config `FILE` whose NFLOG group and copy range to use (default: the embedded one)")
	ipt := fs.Bool("iptables", false, "print iptables and ip6tables commands instead of nft rules")
	rulesOnly := fs.Bool("rules-only", false, "print only the rules, without the explanation (for scripts)")
	prefix := fs.String("prefix", firewall.DefaultLogPrefix, "log `PREFIX` of the rules (rules may select on it)")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	if len(cfg.Inputs.NFLOG) == 0 {
		fmt.Fprintf(e.stderr, "firewall: %s reads no NFLOG group (inputs.nflog is empty)\n", cfg.File)
		return exitUsage
	}
	firewall.Write(e.stdout, cfg.Inputs.NFLOG[0], firewall.Options{Prefix: *prefix, IPTables: *ipt, RulesOnly: *rulesOnly})
	return exitOK
}
