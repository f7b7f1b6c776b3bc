// Package projections folds storeloop events into state. The bucket
// materializer here is what the store node replays its stream with at start,
// and what any other reader of the stream can use to build the same view:
// records by key, secondary indexes, autoincrement high-water marks and bucket
// definitions.
//
// A State is not safe for concurrent use; its owner serialises access.
package projections
