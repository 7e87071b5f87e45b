"""The DICOM node: receive studies from a PACS, diagnose them, send the results back."""
