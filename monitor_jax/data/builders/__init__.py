"""TFDS builders (array_record, no TensorFlow): the bundled suite and user JSONL data."""
