// Package deploy holds storeloop's deployment files — NATS configurations,
// Docker Compose, Kubernetes manifests and the local launcher launch.sh —
// and, in its tests, the checks that keep them consistent with the
// daemons: the YAML parses, probes hit endpoints the daemons serve, every
// flag passed exists, the NATS configurations run a store node, and the
// launcher starts, serves and stops.
package deploy
