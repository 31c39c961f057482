"""capture_rig"""
