package pgserver

// ReadyMarker is the file in the data folder that says the cluster was
// fully set up.
const ReadyMarker = readyMarker

// InitdbSuffix names the sibling folder a new cluster is built in.
const InitdbSuffix = initdbSuffix

// WithInitdbOutput returns cfg with f called with each piece of initdb's
// output as it arrives, from a goroutine of its own.
func WithInitdbOutput(cfg Config, f func(string)) Config {
	cfg.hooks = &hooks{initdbOutput: f}
	return cfg
}
