"""The `/v1/stream` wire protocol, for both ends: message types and their JSON encoding
(`messages`), strict parsing of client messages (`parse`), typed errors (`errors`), limits, close
codes and defaults (`limits`). JPEG data URLs are `robot_formats.image`."""
