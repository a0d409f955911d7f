"""The landing planner behind the sensors: newly landed files → runs, nothing twice.

A file is *new* when its id (store key + ETag, GCS generation or mtime + size) has not been
handled before. Arrival time is the object's modification time from `ObjectStore.list` (S3 and
Azure in whole seconds, GCS finer), or on local disk the later of mtime and ctime (a file
renamed into place keeps its mtime but gets a new ctime).

The cursor holds a high-water second H, the ids of handled files that arrived within the
lookback (10 minutes) before H, and the ids of files waiting for their day's partition.
Each tick lists arrivals >= H - lookback and drops the remembered ids. So a file written in
the same second as H is found, and so is an upload that became visible late but is stamped
with its start time (S3 multipart uploads are), as long as it shows within the lookback.

Nothing here knows Dagster: `lake_pipelines.sensors` wires it to a sensor.
"""
