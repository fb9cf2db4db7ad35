"""A multi-GT set from a user's own photos: candidate GTs (`data build`), a labelling page (`label serve`) and
labels from a metric (`label auto`)."""
