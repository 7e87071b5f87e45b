"""Reading scans: NM DICOM objects and PNG/JPEG exports into a `Study` (`read.read_study`)."""
