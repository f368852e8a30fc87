"""Turning video files into features and a searchable, persistent library.

The public API, from the top down::

    from indexing.library import Library            # the library directory (see its module docstring)
    from models.clip_encoder import ClipEncoder, EncoderSpec

    encoder = ClipEncoder.load(EncoderSpec("ViT-B-16", "openai"))
    lib = Library.open("data/library")                        # creates it on first use
    rec = lib.add("walk.mp4", encoder, progress=lambda done, total: ...)   # -> VideoRecord
    lib.videos()                                              # -> [VideoRecord], ready ones
    lib.features(rec.id)                                      # float16 [num_bins, dim] (memory map)
    lib.grid(rec.id)                                          # TimeGrid: row i covers [i/rate, (i+1)/rate)
    lib.media_path(rec.id)                                    # the video to cut answer clips from
    hits = lib.search(encoder.encode_text(["my keys"]), k=10) # [[SearchHit(video_id, bin, time, ...)]]
    lib.remove(rec.id); lib.check(); lib.repair()

Lower levels, for tools and tests: :func:`indexing.probe.probe` (what a file is, or why it cannot be
indexed), :class:`indexing.decode.GridDecoder` (grid frames decoded in watched child processes, in bounded
batches), :func:`indexing.extract.extract_features` (decode + encode into an array). Errors a user can act
on are :mod:`indexing.errors` classes; tunables with their defaults are in :mod:`indexing.config`.
"""
