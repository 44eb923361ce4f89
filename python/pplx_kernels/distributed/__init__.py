"""Scale-out on Ray (optional extra `ray`): a distributed build that writes
a sharded index, and exact search over its shards, in-process or with one
Ray actor per shard. Ray is imported only where it is used."""

from .build import build, index_id, split
from .manifest import ShardedFormatError, is_sharded, shard_of
from .sharded import SearchResult, ShardedIndex, ShardUnavailableError, open_any

__all__ = ["build", "index_id", "split", "ShardedFormatError", "is_sharded", "shard_of", "SearchResult",
           "ShardedIndex", "ShardUnavailableError", "open_any"]
