package matcher

import (
	"fmt"
	"time"
)

// Config is the "matcher" section of the configuration file.
type Config struct {
	// Shards names every shard of the index, in shard-map order; each name is also a
	// peer name (config peers: name -> address) through which the others reach it.
	// Empty: one shard, this replica.
	Shards []string `yaml:"shards"`
	// ShardIndex is the position of this replica's own shard in Shards.
	ShardIndex int `yaml:"shard_index"`
	// ShardTimeout bounds each shard's answer to a fanned-out search; a shard that
	// takes longer is reported missing and the result partial.
	ShardTimeout time.Duration `yaml:"shard_timeout"`
	// ANNMinTemplates: galleries of at least this many templates get an IVF index and
	// use it for searches in the default mode.
	ANNMinTemplates int `yaml:"ann_min_templates"`
	// NProbe is the default number of IVF lists scanned per query; 0: an eighth
	// of the gallery's lists.
	NProbe int `yaml:"nprobe"`
	// SearchWorkers bounds the goroutines of one search; 0: all cores.
	SearchWorkers int `yaml:"search_workers"`
	// MaxQueries bounds the queries of one Search call.
	MaxQueries int `yaml:"max_queries"`
	// MaxTopK bounds top_k.
	MaxTopK int `yaml:"max_top_k"`
	// MaxTemplatesPerCall bounds AddTemplates.
	MaxTemplatesPerCall int `yaml:"max_templates_per_call"`
}

// SetDefaults fills the defaults.
func (c *Config) SetDefaults() {
	d := DefaultIndexConfig()
	c.ShardTimeout = 2 * time.Second
	c.ANNMinTemplates = d.ANNMinTemplates
	c.NProbe = d.NProbe
	c.MaxQueries = 256
	c.MaxTopK = 1000
	c.MaxTemplatesPerCall = 10_000
}

// Validate checks the shard map and the limits.
func (c *Config) Validate() error {
	if len(c.Shards) > 0 && (c.ShardIndex < 0 || c.ShardIndex >= len(c.Shards)) {
		return fmt.Errorf("shard_index %d outside shards (%d)", c.ShardIndex, len(c.Shards))
	}
	if len(c.Shards) == 0 && c.ShardIndex != 0 {
		return fmt.Errorf("shard_index %d without shards", c.ShardIndex)
	}
	seen := map[string]bool{}
	for _, s := range c.Shards {
		if s == "" || seen[s] {
			return fmt.Errorf("shards: empty or repeated name %q", s)
		}
		seen[s] = true
	}
	if c.ShardTimeout <= 0 || c.ANNMinTemplates <= 0 || c.MaxQueries <= 0 || c.MaxTopK <= 0 || c.MaxTemplatesPerCall <= 0 {
		return fmt.Errorf("shard_timeout, ann_min_templates, max_queries, max_top_k and max_templates_per_call must be positive")
	}
	if c.NProbe < 0 {
		return fmt.Errorf("nprobe must not be negative")
	}
	return nil
}

func (c Config) indexConfig() IndexConfig {
	return IndexConfig{ANNMinTemplates: c.ANNMinTemplates, NProbe: c.NProbe, Workers: c.SearchWorkers}
}

func (c Config) shard() Shard {
	if len(c.Shards) == 0 {
		return Shard{Index: 0, Count: 1}
	}
	return Shard{Index: c.ShardIndex, Count: len(c.Shards)}
}
