"""Container pieces the docker and kubernetes backends share: the engine connection, project
images (build, tag by content, push) and the mlgrid SDK installed into them."""
