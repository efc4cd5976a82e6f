"""Building blocks of `llaso data synth`: texts and questions (`content`), musical notes (`notes`) and
controlled mispronunciations (`pronunciation`)."""
