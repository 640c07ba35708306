"""Sample data: the sample-city generator and the zone rule presets (data/policies/*.yaml)."""
